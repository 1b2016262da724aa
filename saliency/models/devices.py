"""Choosing a torch device by name."""

from __future__ import annotations

import torch


def resolve_device(spec: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA, then MPS, then CPU; otherwise the named device, if present.

    Raises ``ValueError`` for an unknown name or a device this machine does not have.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None or spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device {spec!r}; valid: auto, cpu, cuda, cuda:N, mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"no {spec}: this machine has {torch.cuda.device_count()} CUDA devices"
            )
        if device.index is None:  # tensors report cuda:N; a bare "cuda" would never equal them
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {spec!r}; valid: auto, cpu, cuda, cuda:N, mps")
    return device
