"""What a folder run computes and writes for each image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..choices import RAW_FORMATS
from ..engine.options import MethodOptions
from ..engine.targets import TargetSpec
from ..models.loading import LoadedModel
from ..pictures.render import RenderOptions
from .drawing import Encoding


@dataclass(frozen=True)
class JobOptions:
    """What to compute and write for each image. ``method_options`` sets Grad-CAM's layer,
    SmoothGrad and Integrated Gradients, and its ``batch_size`` is the number of images per batch
    (and of inputs per pass for noisy copies and path points)."""

    methods: tuple[str, ...] = ("guided",)
    target: TargetSpec = TargetSpec()
    fit: str | None = None
    render: RenderOptions = field(default_factory=RenderOptions)
    save_raw: bool = False
    # with save_raw: a .npy per map, or containers of many maps (see saliency.files.raw_maps)
    raw_format: str = "npy"
    overwrite: bool = False
    encoding: Encoding = field(default_factory=Encoding)
    # decode, preprocess and draw on the model's device (see .resident); run_job sets it for
    # CUDA models when left None
    resident: bool | None = None
    # run the model tuned (saliency.models.tuning: batch norm as scales, channels_last); None:
    # where it was measured faster, on a CPU (run_job decides, see tuning.tunes)
    tuned: bool | None = None
    method_options: MethodOptions = field(default_factory=lambda: MethodOptions(batch_size=16))

    def __post_init__(self) -> None:
        if self.raw_format not in RAW_FORMATS:
            raise ValueError(
                f"unknown raw format {self.raw_format!r}; valid: {', '.join(RAW_FORMATS)}"
            )

    @property
    def contained(self) -> bool:
        """Whether raw maps go into containers rather than files of their own."""
        return self.save_raw and self.raw_format == "safetensors"

    @property
    def batch_size(self) -> int:
        """Images per batch: the methods' ``batch_size``."""
        return self.method_options.batch_size

    def label(self, method: str) -> str:
        """The method's part of output names: ``guided``, or ``guided_smooth`` with SmoothGrad."""
        return f"{method}_smooth" if self.method_options.smooth else method

    def stem(self, base: str, method: str, suffix: str) -> str:
        """An output's name without extension: ``sub/cat.guided`` or ``sub/cat.guided.top2``."""
        return f"{base}.{self.label(method)}" + (f".{suffix}" if suffix else "")

    def outputs(self, base: str, method: str, suffix: str) -> list[str]:
        """The files of one picture: the picture first, then with ``save_raw`` the map and the
        image's geometry (in containers: the container the map went to, added when it did)."""
        stem = self.stem(base, method, suffix)
        own = self.save_raw and not self.contained
        raw = [f"{stem}.npy", f"{base}.geometry.json"] if own else []
        return [f"{stem}.{self.encoding.format}", *raw]


def resolve_method_options(
    loaded: LoadedModel, methods: Sequence[str], options: MethodOptions
) -> MethodOptions:
    """``options`` checked for ``methods`` (each applies to the model's kind), the layer
    resolved on a probe of the model's input size (see
    :func:`~saliency.engine.options.resolved`)."""
    import torch

    from ..engine.options import resolved
    from ..engine.registry import get_method

    for name in methods:
        tasks = get_method(name).tasks
        if tasks is not None and loaded.task not in tasks:
            raise ValueError(
                f"{name} explains a {' or '.join(tasks)} model; {loaded.name} is a "
                f"{loaded.task} model" + (" (rise is its kind's)" if name == "drise" else "")
            )
    size = loaded.input_size
    probe = torch.zeros(1, 3, size, size, device=loaded.device)
    return resolved(options, [get_method(m) for m in methods], loaded.model, probe)


def similarity_spec(
    loaded: LoadedModel, reference: str | Path, different: bool = False, fit: str | None = None
) -> TargetSpec:
    """A folder run's target for an embedding model: the similarity of each photo's embedding
    to ``reference``'s (a photo, preprocessed as the run's photos are), or 1 - it with
    ``different``. Raises :class:`~saliency.errors.ImageError` for a photo that cannot be read
    and ``ValueError`` for a model that is not an embedding model."""
    import torch

    from ..files.images import load_image
    from ..files.sources import read_regular

    if loaded.task != "embedding":
        raise ValueError(
            f"a similarity needs an embedding model; {loaded.name} is a {loaded.task} model"
        )
    sha256 = read_regular(reference)[1].sha256
    photo = load_image(reference)
    x, _ = loaded.preprocess(photo, fit or loaded.default_fit)
    with torch.no_grad():
        embedding = loaded.model(x[None].to(loaded.device))[0].detach()
    kind = "different" if different else "similar"
    return TargetSpec(
        kind, reference=embedding, reference_name=Path(reference).name, reference_sha256=sha256
    )


BACKGROUND = "__background__"  # torchvision's name for a segmentation's background class


def segmentation_spec(loaded: LoadedModel, target: TargetSpec) -> TargetSpec:
    """A folder run's target for a segmentation model: with ``top1`` (the default), each class
    present in an image but the background, a picture each; with a class, that class over the
    pixels the model assigns to it (one picture, whether present or not). Raises
    ``ValueError`` for ``topk`` (a segmentation has no ranking of classes per image) and for a
    model that is not a segmentation model."""
    if loaded.task != "segmentation":
        raise ValueError(f"{loaded.name} is a {loaded.task} model, not a segmentation model")
    if target.kind == "top1":
        background = tuple(i for i, name in enumerate(loaded.categories) if name == BACKGROUND)
        return TargetSpec("present", ignore=background)
    if target.kind == "class":
        return replace(target, region=True)
    raise ValueError(
        f"{loaded.name} is a segmentation model: it explains each class present in an image "
        "(the default) or one class named with --target (an index or a name), not topk"
    )


def detection_spec(
    loaded: LoadedModel,
    target: TargetSpec,
    min_score: float | None = None,
    max_detections: int | None = None,
    per_box_normalize: bool = False,
) -> TargetSpec:
    """A folder run's target for a detector: each detection scored ``min_score`` (0.5) or more,
    the ``max_detections`` (10) best, each over its box (optionally renormalised inside it).
    Raises ``ValueError`` for these settings on a model that is not a detector, and for a
    class target (a detector's pictures are its detections')."""
    if loaded.task != "detection":
        raise ValueError(
            f"--min-score, --max-detections and --per-box-normalize are a detector's; "
            f"{loaded.name} is a {loaded.task} model"
        )
    if target.kind != "top1":
        raise ValueError(
            f"{loaded.name} is a detector: it explains each detection (--min-score, "
            "--max-detections), not a class named with --target"
        )
    return TargetSpec(
        "detections",
        k=10 if max_detections is None else max_detections,
        min_score=0.5 if min_score is None else min_score,
        box_normalize=per_box_normalize,
    )
