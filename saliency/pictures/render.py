"""Turning a saliency map into a picture over the original photo.

Defaults and why:

* ``reduce="max"``: the largest |value| over colour channels, as Simonyan et al. show gradients.
* ``clip_percentile=99``: a few extreme pixels would otherwise squash the rest to black.
* colormaps: ``inferno`` for magnitudes, ``coolwarm`` for signed maps (``sign="all"``). Both are
  perceptually ordered, so equal steps in value look like equal steps in colour; ``jet`` invents
  edges where there are none and reads badly for colour-blind viewers and in grayscale.
* ``overlay`` blends the colormap over the photo with a per-pixel opacity of ``alpha`` times the
  map's normalized magnitude, so quiet regions show the photo unchanged.

A map that is all zero, or not finite anywhere, renders as empty (the photo alone, or a blank
frame) with an :class:`EmptyMapWarning`: never a division by zero, never a frame of solid colour.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from PIL import Image

from ..geometry import Geometry
from .paint import RenderOptions, colormap_lut, paint

__all__ = [
    "EMPTY_MESSAGE",
    "EmptyMapWarning",
    "RenderOptions",
    "colormap_lut",
    "draw",
    "normalize",
    "normalize_deferred",
    "prepare",
    "prepare_deferred",
    "prepare_tensor",
    "reduce_map",
    "render",
]


class EmptyMapWarning(UserWarning):
    """The map had no finite non-zero value; it was drawn as empty."""


def _finite(maps: torch.Tensor) -> torch.Tensor:
    """A float copy (on the maps' device) with NaN and infinities set to 0."""
    return torch.nan_to_num(maps.detach().float(), nan=0.0, posinf=0.0, neginf=0.0)


def reduce_map(maps: torch.Tensor, reduce: str = "max", sign: str = "abs") -> torch.Tensor:
    """(C, h, w) -> (h, w): magnitudes for abs/positive/negative, a signed map for ``all``."""
    maps = _finite(maps)
    if sign == "all":
        if reduce == "sum":
            return maps.sum(0)
        index = maps.abs().argmax(0, keepdim=True)
        return maps.gather(0, index)[0]
    if sign == "abs":
        part = maps.abs()
    elif sign == "positive":
        part = maps.clamp(min=0)
    else:
        part = (-maps).clamp(min=0)
    return part.amax(0) if reduce == "max" else part.sum(0)


def normalize(values: torch.Tensor, clip_percentile: float = 99.0) -> torch.Tensor | None:
    """Scale by the ``clip_percentile`` of |values| and clip to [-1, 1]; None if nothing to show."""
    scaled, empty = normalize_deferred(values, clip_percentile)
    return None if bool(empty) else scaled


def normalize_deferred(
    values: torch.Tensor, clip_percentile: float = 99.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`normalize`, without asking the device anything: the scaled values (zeros for
    an empty map) and a boolean tensor that is true for an empty map, both where ``values`` are,
    to be read with the picture (a GPU is never made to wait here)."""
    magnitude = values.abs().flatten()
    if magnitude.numel() == 0:
        return values.float(), torch.ones((), dtype=torch.bool, device=values.device)
    empty = ~(magnitude > 0).any()
    # torch.quantile's linear interpolation, written out: its argument checks read the device;
    # the two order statistics selected, not sorted (a sort of 50,000 values took 4 ms)
    rank = clip_percentile / 100.0 * (magnitude.numel() - 1)
    below, above = math.floor(rank), math.ceil(rank)
    low = magnitude.kthvalue(below + 1).values.double()
    high = low if above == below else magnitude.kthvalue(above + 1).values.double()
    scale = torch.lerp(low, high, rank - below)
    scale = torch.where(scale > 0, scale, magnitude.max().double())
    scale = torch.where(empty, torch.ones_like(scale), scale).float()
    return (values / scale).clamp(-1.0, 1.0), empty


def render(
    image: Image.Image | None,
    maps: torch.Tensor,
    geometry: Geometry,
    options: RenderOptions | None = None,
) -> Image.Image:
    """Draw a map over its photo, at the photo's original size.

    Args:
        image: The photo; None for every style but ``overlay``.
        maps: One sample's map (C, h, w) at model resolution.
        geometry: How the photo became the model's input (from ``LoadedModel.preprocess``),
            so that the map is mapped back onto it exactly.
        options: How to draw it; None for the defaults.

    Returns:
        An RGB picture of the photo's size.

    Raises:
        ValueError: ``overlay`` without a photo, or a photo of another size than the
            geometry's.

    Warns:
        EmptyMapWarning: The map is all zero or not finite; it is drawn as empty.
    """
    picture, empty = draw(image, maps, geometry, options)
    if empty:
        warnings.warn(EMPTY_MESSAGE, EmptyMapWarning, stacklevel=2)
    return picture


EMPTY_MESSAGE = "the saliency map is all zero (or not finite): drawn as empty"


def prepare(maps: torch.Tensor, options: RenderOptions | None = None) -> list[np.ndarray] | None:
    """The planes :func:`~.paint.paint` draws from ``maps`` (C, h, w): one (h, w) float32 plane
    in [0, 1] (or [-1, 1] when signed), three for the ``rgb`` style; None for an empty map.

    The cheap, torch part of drawing: it runs where the maps are, and the planes (small, at model
    resolution) go to whatever process paints them at the photo's size.
    """
    values = prepare_tensor(maps, options)
    if values is None:
        return None
    return [np.ascontiguousarray(plane.cpu().numpy(), dtype=np.float32) for plane in values]


def prepare_tensor(maps: torch.Tensor, options: RenderOptions | None = None) -> torch.Tensor | None:
    """As :func:`prepare`, as one float32 tensor (P, h, w) on the maps' device."""
    values, empty = prepare_deferred(maps, options)
    return None if bool(empty) else values


def prepare_deferred(
    maps: torch.Tensor, options: RenderOptions | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """As :func:`prepare_tensor`, on the maps' device without waiting for it: the planes (zeros
    for an empty map) and whether the map was empty, as a boolean tensor there."""
    options = options or RenderOptions()
    if options.style == "rgb":
        values, empty = normalize_deferred(_finite(maps), options.clip_percentile)
        if values.shape[0] == 1:  # a one-channel map (Grad-CAM): gray
            values = values.expand(3, -1, -1)
    else:
        reduced = reduce_map(maps, options.reduce, options.sign)
        values, empty = normalize_deferred(reduced[None], options.clip_percentile)
    return values.float(), empty


def draw(
    image: Image.Image | None,
    maps: torch.Tensor,
    geometry: Geometry,
    options: RenderOptions | None = None,
) -> tuple[Image.Image, bool]:
    """As :func:`render`, without warning: returns the picture and whether the map was empty.

    ``image`` is needed only for the overlay style; the others take the size from ``geometry``.
    """
    options = options or RenderOptions()
    planes = prepare(maps, options)
    return paint(image, planes, geometry, options), planes is None
