"""Listing the models that :func:`saliency.load_model` can build, and which work offline now."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .detection import detection_names
from .downloads import OFFLINE_DEFAULT, hub_cache
from .zoo import LITE0_ARCH, segmentation_names, torchvision_names


@dataclass(frozen=True)
class ModelInfo:
    """One row of :func:`list_models`."""

    name: str
    source: str
    parameters: int | None
    offline: bool


def list_models(offline_only: bool = False) -> list[ModelInfo]:
    """The offline default, every torchvision classifier, segmentation model and detector, and
    timm models already cached.

    ``offline`` says whether the model can be built with pretrained weights right now without a
    network (weights shipped or cached).
    """
    import torchvision

    rows = [ModelInfo(OFFLINE_DEFAULT, "offline default", _lite0_parameters(), True)]
    kinds = {arch: "torchvision" for arch in torchvision_names()}
    kinds.update({arch: "torchvision segmentation" for arch in segmentation_names()})
    kinds.update({arch: "torchvision detection" for arch in detection_names()})
    for arch, kind in kinds.items():
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        rows.append(
            ModelInfo(
                arch,
                kind,
                weights.meta.get("num_params"),
                hub_cache(weights.url).is_file(),
            )
        )
    rows += _cached_timm_models()
    return [row for row in rows if row.offline or not offline_only]


def _lite0_parameters() -> int:
    import timm

    with torch.device("meta"):
        return sum(p.numel() for p in timm.create_model(LITE0_ARCH).parameters())


def _cached_timm_models() -> list[ModelInfo]:
    from huggingface_hub import scan_cache_dir

    try:
        repos = scan_cache_dir().repos
    except Exception:  # no cache folder yet, or one we cannot read
        return []
    rows = []
    for repo in repos:
        if repo.repo_id.startswith("timm/"):
            arch = repo.repo_id[len("timm/") :].split(".")[0]
            rows.append(ModelInfo(f"timm/{arch}", "timm", None, True))
    return rows
