"""Reference inputs: Integrated Gradients' baselines, and the Gaussian blur that makes the
blurred one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..choices import BASELINES

BLUR_FRACTION = 0.1  # the blurred baseline's Gaussian sigma, as a fraction of the longer side


def make_baseline(
    inputs: torch.Tensor,
    baseline: str | torch.Tensor,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
) -> torch.Tensor:
    """The baseline for each input, shaped like ``inputs``.

    ``"black"`` is the black image in the model's normalized input space (needs
    ``normalization=(mean, std)``); ``"zero"`` the all-zero input (for a normalized model, the
    dataset's mean colour); ``"blurred"`` each input under a Gaussian blur of sigma 10% of its
    longer side (a baseline with the photo's colours but no edges). A tensor broadcastable to
    ``inputs`` is used as given.
    """
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(inputs.device, inputs.dtype).expand_as(inputs).detach()
        except RuntimeError:
            raise ValueError(
                f"baseline of shape {tuple(baseline.shape)} does not fit inputs of shape "
                f"{tuple(inputs.shape)}"
            ) from None
    kind = baseline_kind(baseline)
    if kind == "zero":
        return torch.zeros_like(inputs)
    if kind == "black":
        if normalization is None:
            raise ValueError(
                "baseline 'black' needs the model's input normalization: pass the LoadedModel "
                "from load_model() rather than its .model, or use baseline='zero', 'blurred' or "
                "a tensor"
            )
        mean, std = (
            torch.tensor(v, dtype=inputs.dtype, device=inputs.device) for v in normalization
        )
        black = (0.0 - mean) / std
        return black.view(1, -1, 1, 1).expand_as(inputs).clone()
    return blur(inputs, BLUR_FRACTION * max(inputs.shape[-2:]))


def baseline_kind(baseline: str) -> str:
    """A baseline name, normalized; raises ``ValueError`` listing the valid names."""
    kind = baseline.strip().lower() if isinstance(baseline, str) else baseline
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; valid baselines: {', '.join(BASELINES)}")
    return kind


def blur(inputs: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur (B, C, H, W) with reflected edges; the kernel stays within the
    image (radius at most H-1 and W-1)."""
    out = inputs.detach()
    for dim in (2, 3):
        size = out.shape[dim]
        radius = min(math.ceil(3.0 * sigma), size - 1)
        if radius < 1:
            continue
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(out.device, out.dtype)
        channels = out.shape[1]
        shape = (1, 1, -1, 1) if dim == 2 else (1, 1, 1, -1)
        pad = (0, 0, radius, radius) if dim == 2 else (radius, radius, 0, 0)
        padded = torch.nn.functional.pad(out, pad, mode="reflect")
        out = torch.nn.functional.conv2d(
            padded, kernel.view(shape).expand(channels, -1, -1, -1), groups=channels
        )
    return out
