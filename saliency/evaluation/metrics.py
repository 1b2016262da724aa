"""The metrics: each turns an image's pixel order into a curve of the explained class's softmax
probability as pixels go (or come back), and a curve into one number.

* ``deletion`` / ``insertion`` (Petsiuk et al. 2018): the most relevant pixels replaced by the
  substrate (a blurred copy, or the mean colour) in ``steps`` equal fractions, or put back into
  the substrate; the score is the area under the curve over the fraction (trapezoid, in [0, 1]).
  Deletion: lower is better; insertion: higher.
* ``road_morf`` / ``road_lerf`` (Rong et al. 2022): the most (least) relevant fractions removed by
  noisy linear imputation (:mod:`.road`); the score is the mean over the fractions. MoRF: lower is
  better; LeRF: higher; their gap (LeRF - MoRF): higher.
* ``class_sensitivity``: the Spearman rank correlation of the map for the top-1 class with the map
  for another class; near 1 means the map ignores the class (lower is better).
* ``pointing_game`` (Zhang et al. 2016), for a detection: 1 if the map's peak lies inside the
  detection's box, else 0; its mean is the share of hits (higher is better).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torchvision.transforms.functional as TF

from ..choices import FILLS
from .ranking import removed
from .road import impute

CURVES = ("deletion", "insertion", "road_morf", "road_lerf")
LOWER_IS_BETTER = {"deletion": True, "insertion": False, "road_morf": True, "road_lerf": False,
                   "road_gap": False, "class_sensitivity": True,
                   "pointing_game": False}  # fmt: skip
ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

Probabilities = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
T = TypeVar("T")


def substrate(images: torch.Tensor, fill: str) -> torch.Tensor:
    """What removed pixels become: a Gaussian blur (kernel 11, s.d. 5, as RISE's insertion), or
    each image's mean colour."""
    if fill == "blur":
        return TF.gaussian_blur(images, [11, 11], [5.0, 5.0])
    if fill == "mean":
        return images.mean((2, 3), keepdim=True).expand_as(images).clone()
    raise ValueError(f"unknown fill {fill!r}; valid: {', '.join(FILLS)}")


def fractions(steps: int) -> list[float]:
    return [k / steps for k in range(steps + 1)]


def deletion_curves(
    images: torch.Tensor,
    places: torch.Tensor,
    base: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    insertion: bool,
    probabilities: Probabilities,
    ends: tuple[torch.Tensor, torch.Tensor] | None = None,
    per_pass: int = 64,
) -> torch.Tensor:
    """(B, steps + 1) probabilities of ``targets`` as the pixels go (come back) in ``places``
    order, from fraction 0 to 1. ``ends``: the probabilities (B,) of the clean images and of
    ``base``, the curves' end points, which no map changes (computed here if None); the copies
    go to ``probabilities`` as many fractions at a time as fill ``per_pass`` copies."""
    points = fractions(steps)

    def copies(chunk: Sequence[float]) -> torch.Tensor:
        gone = torch.cat([removed(places, fraction) for fraction in chunk])[:, None]
        clean, blank = images.repeat(len(chunk), 1, 1, 1), base.repeat(len(chunk), 1, 1, 1)
        return torch.where(gone, clean, blank) if insertion else torch.where(gone, blank, clean)

    if ends is None:
        return torch.stack(_in_passes(points, copies, targets, probabilities, per_pass), 1)
    inner = _in_passes(points[1:-1], copies, targets, probabilities, per_pass)
    first, last = (ends[1], ends[0]) if insertion else ends
    return torch.stack([first, *inner, last], 1)


def road_curves(
    images: torch.Tensor,
    places: torch.Tensor,
    targets: torch.Tensor,
    most_first: bool,
    probabilities: Probabilities,
    seeds: Sequence[int],
    road_fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    per_pass: int = 64,
) -> torch.Tensor:
    """(B, fractions) probabilities of ``targets`` with the most (least) relevant fractions
    imputed. ``seeds``: one per image, for the imputation's noise. The fractions of one pass
    are imputed together (on the CPU, on every thread torch has)."""

    def copies(numbers: Sequence[int]) -> torch.Tensor:
        gone = torch.cat([removed(places, road_fractions[k], most_first) for k in numbers])
        item_seeds = [seed * 1000 + k for k in numbers for seed in seeds]
        return impute(images.repeat(len(numbers), 1, 1, 1), gone, noise, item_seeds)

    numbers = list(range(len(road_fractions)))
    # imputed together: as many as keep every thread busy (up to 64 copies at a time)
    together = max(per_pass, min(len(numbers) * len(seeds), 64))
    return torch.stack(_in_passes(numbers, copies, targets, probabilities, together), 1)


def _in_passes(
    points: Sequence[T],
    copies: Callable[[Sequence[T]], torch.Tensor],
    targets: torch.Tensor,
    probabilities: Probabilities,
    per_pass: int,
) -> list[torch.Tensor]:
    """Each point's probabilities (B,): the copies of as many points as fill ``per_pass``
    made together (``probabilities`` passes them in batches of its own)."""
    count = targets.shape[0]
    group = max(1, per_pass // count)
    columns: list[torch.Tensor] = []
    for start in range(0, len(points), group):
        chunk = points[start : start + group]
        scored = probabilities(copies(chunk), targets.repeat(len(chunk)))
        columns.extend(scored.view(len(chunk), count).unbind(0))
    return columns


def area(curve: torch.Tensor, xs: Sequence[float]) -> torch.Tensor:
    """(B, K) -> (B,): the trapezoid area over ``xs`` (from 0 to 1 for deletion/insertion)."""
    x = torch.tensor(list(xs), dtype=curve.dtype, device=curve.device)
    return torch.trapezoid(curve, x, dim=1)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, H, W) twice -> (B,): the rank correlation of each image's two maps, as the sanity
    check computes it (ties get their average rank; 0 where a map is constant)."""
    from ..checks.sanity_metrics import rank_correlation

    first, second = a.flatten(1).cpu().double().numpy(), b.flatten(1).cpu().double().numpy()
    return torch.tensor([rank_correlation(x, y) for x, y in zip(first, second, strict=True)])


def pointing_game(values: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(B, H, W) pixel values and each image's box ``x1, y1, x2, y2`` (B, 4) -> (B,): 1.0 where
    the value's maximum (its first, in row order, on a tie) lies inside the box, else 0.0. A
    pixel is inside when its centre is."""
    width = values.shape[-1]
    peak = values.flatten(1).argmax(dim=1)
    row, column = (peak // width).to(boxes.dtype) + 0.5, (peak % width).to(boxes.dtype) + 0.5
    inside = (column >= boxes[:, 0]) & (column <= boxes[:, 2])
    inside &= (row >= boxes[:, 1]) & (row <= boxes[:, 3])
    return inside.to(values.dtype)
