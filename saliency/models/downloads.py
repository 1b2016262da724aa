"""Whether pretrained weights can be had: cached where torchvision, torch.hub and the Hugging Face
hub cache them, or downloadable; offline, a clear failure naming the ways out, at once."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..errors import WeightsUnavailable

OFFLINE_DEFAULT = "efficientnet_lite0"
OFFLINE_HELP = (
    f"use the offline default model '{OFFLINE_DEFAULT}', local weights "
    "(weights='path/to/checkpoint.pth' with the architecture's name), or weights='random' "
    "(seeded by seed=) to try the architecture"
)


def hub_cache(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def require_download(url: str, cached: Path | None) -> None:
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
    raise WeightsUnavailable(
        f"its pretrained weights are not cached and {host} cannot be reached (no network)",
        OFFLINE_HELP,
    )


def hf_cache(hub_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    repo = hub_id.split("@")[0]
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None
