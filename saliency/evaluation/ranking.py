"""Maps as one value per pixel, and the order in which their pixels are removed."""

from __future__ import annotations

import math

import torch

from ..pictures.render import reduce_map


def pixel_values(maps: torch.Tensor, reduce: str = "max") -> torch.Tensor:
    """(B, C, H, W) maps -> (B, H, W) magnitudes, reduced over channels as pictures are."""
    return torch.stack([reduce_map(m, reduce, "abs") for m in maps]).float()


def ranks(values: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, H, W) int64: each pixel's place when ordered by value, highest first;
    ties in reading order (the earlier pixel first), so the order is deterministic."""
    flat = values.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    places = torch.empty_like(order)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    places.scatter_(1, order, positions)
    return places.view_as(values)


def random_map(shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """(B, H, W) uniform noise from ``seed``: the chance baseline."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator)


def centre_map(shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, H, W) a Gaussian centred on the image (s.d. a quarter of each side): the photographer's
    prior, a baseline many maps resemble."""
    _, height, width = shape
    y = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    x = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    values = torch.exp(-(y[:, None] ** 2) / (2 * (height / 4) ** 2)) * torch.exp(
        -(x[None, :] ** 2) / (2 * (width / 4) ** 2)
    )
    return values.expand(shape).clone()


def removed(places: torch.Tensor, fraction: float, most_first: bool = True) -> torch.Tensor:
    """(B, H, W) bool: the first ``fraction`` of the pixels in ``places`` order (or the last,
    with ``most_first`` false), rounded to the nearest pixel count."""
    total = places[0].numel()
    count = math.floor(fraction * total + 0.5)
    return places < count if most_first else places >= total - count
