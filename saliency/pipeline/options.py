"""What a folder run computes and writes for each image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..choices import RAW_FORMATS
from ..engine.options import MethodOptions
from ..models.loading import LoadedModel
from ..pictures.render import RenderOptions
from ..tasks.classification import ClassPlan
from ..tasks.plan import TargetPlan
from .drawing import Encoding


@dataclass(frozen=True)
class JobOptions:
    """What to compute and write for each image. ``method_options`` sets Grad-CAM's layer,
    SmoothGrad and Integrated Gradients, and its ``batch_size`` is the number of images per batch
    (and of inputs per pass for noisy copies and path points)."""

    methods: tuple[str, ...] = ("guided",)
    target: TargetPlan = field(default_factory=ClassPlan)
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


def _not_for(name: str, loaded: LoadedModel, missing: frozenset[str]) -> str:
    """Why method ``name`` does not explain ``loaded``, which lacks ``missing``."""
    from ..engine.lrp.method import no_attention_rules
    from ..engine.needs import ATTENTION, LAYER_RULES
    from ..engine.registry import get_method
    from ..engine.transformers import global_attention, is_transformer
    from ..tasks.registry import kinds_providing

    method = get_method(name)
    if ATTENTION in missing:
        why = global_attention(loaded.model)
        return f"{name} reads a vision transformer's attention, which {loaded.name} lacks: {why}"
    if LAYER_RULES in missing and is_transformer(loaded.model):
        return no_attention_rules(name, loaded.name)
    kinds = " or ".join(k.name for k in kinds_providing(method.requires)) or "no"
    instead = f" ({method.instead} is its kind's)" if method.instead else ""
    return (
        f"{name} explains a {kinds} model (it needs {', '.join(sorted(missing))}); "
        f"{loaded.name} is a {loaded.kind.name} model{instead}"
    )


def resolve_method_options(
    loaded: LoadedModel, methods: Sequence[str], options: MethodOptions
) -> MethodOptions:
    """``options`` checked for ``methods`` (each finds what it needs in the model's kind),
    the layer resolved on a probe of the model's input size (see
    :func:`~saliency.engine.options.resolved`)."""
    import torch

    from ..engine.options import resolved
    from ..engine.registry import get_method

    provides = loaded.provides  # read from the model's modules: once, not per method
    for name in methods:
        method = get_method(name)
        missing = method.requires - provides  # as --method all's applies_to
        if missing:
            raise ValueError(_not_for(name, loaded, missing))
    size = loaded.input_size
    probe = torch.zeros(1, 3, size, size, device=loaded.device)
    return resolved(options, [get_method(m) for m in methods], loaded.model, probe)
