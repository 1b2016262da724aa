"""Listing the models that :func:`saliency.load_model` can build, and which work offline now."""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
    """The offline default, every torchvision classifier and segmentation model, and timm
    models already cached.

    ``offline`` says whether the model can be built with pretrained weights right now without a
    network (weights shipped or cached).
    """
    import torchvision

    rows = [ModelInfo(OFFLINE_DEFAULT, "offline default", _lite0_parameters(), True)]
    for arch in (*torchvision_names(), *segmentation_names()):
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        kind = "torchvision" if arch in torchvision_names() else "torchvision segmentation"
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
