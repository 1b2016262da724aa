"""SmoothGrad noise (Smilkov et al. 2017): Gaussian copies of each input.

The noise level is a fraction of each input's value range, ``sigma = noise * (max - min)``, as in
the paper (10-20% works well). The draws come from a CPU generator seeded with ``seed`` and are
the same for every image of a shape, so an image's map does not depend on its batch or order.
"""

from __future__ import annotations

import torch


def noise_samples(shape: tuple[int, ...], count: int, seed: int = 0) -> torch.Tensor:
    """``count`` standard-normal draws of ``shape``, (count, *shape), from ``seed`` (CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator)


def noise_scale(inputs: torch.Tensor, noise: float) -> torch.Tensor:
    """Per-sample standard deviation (B, 1, 1, 1): ``noise`` times the sample's value range."""
    flat = inputs.detach().flatten(1)
    span = flat.amax(dim=1) - flat.amin(dim=1)
    return (noise * span).view(-1, 1, 1, 1)


def check_smooth(smooth: int, noise: float) -> None:
    """Validate SmoothGrad's sample count and noise level."""
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
        raise ValueError(f"smooth must be a whole number of samples >= 0, got {smooth!r}")
    if smooth and not (isinstance(noise, (int, float)) and 0.0 < float(noise) < float("inf")):
        raise ValueError(f"noise must be a positive fraction of the input range, got {noise!r}")
