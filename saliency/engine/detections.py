"""The layout of a detector's output as the engine reads it: one tensor (B, N, 6) per batch,
each row ``x1, y1, x2, y2, score, label`` in the input's pixels, sorted by score, padded with
rows of score 0 and label -1 (see :class:`~saliency.Detector`, which makes it). Here, below
the models, so that box targets read it without importing what builds detectors."""

from __future__ import annotations

import torch

__all__ = ["BOX", "COLUMNS", "LABEL", "SCORE", "box_mask", "detections_of"]

BOX = slice(0, 4)
SCORE = 4
LABEL = 5
COLUMNS = 6


def detections_of(output: torch.Tensor) -> torch.Tensor:
    """``output`` if it is a :class:`~saliency.Detector`'s (B, N, 6); else the error a box
    target gives on any other model."""
    if output.dim() != 3 or output.shape[-1] != COLUMNS:
        raise ValueError(
            f"a box target needs a detector's output (B, N, 6); this model returns "
            f"{tuple(output.shape)}: wrap a torchvision detector in saliency.Detector"
        )
    return output


def box_mask(box: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A box ``x1, y1, x2, y2`` as a mask (h, w) of ``size`` (h, w): the pixels it covers (one
    at least), to outline on a picture and to measure a map's share inside."""
    x1, y1, x2, y2 = box.tolist()
    mask = torch.zeros(size, dtype=torch.bool)
    left, top = min(max(0, int(x1)), size[1] - 1), min(max(0, int(y1)), size[0] - 1)
    mask[top : max(top + 1, round(y2)), left : max(left + 1, round(x2))] = True
    return mask
