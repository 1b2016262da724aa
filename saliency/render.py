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

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image

from .preprocess import Geometry

STYLES = ("overlay", "heatmap", "rgb", "grayscale")
SIGNS = ("abs", "positive", "negative", "all")
REDUCTIONS = ("max", "sum")
_CHUNK_ROWS = 64  # rows resampled and coloured at a time: memory stays flat for huge photos


class EmptyMapWarning(UserWarning):
    """The map had no finite non-zero value; it was drawn as empty."""


@dataclass(frozen=True)
class RenderOptions:
    """How to draw a map (see the module doc for the defaults)."""

    style: str = "overlay"
    reduce: str = "max"
    sign: str = "abs"
    clip_percentile: float = 99.0
    cmap: str | None = None
    alpha: float = 0.7

    def __post_init__(self) -> None:
        for value, valid, what in (
            (self.style, STYLES, "style"),
            (self.sign, SIGNS, "sign"),
            (self.reduce, REDUCTIONS, "reduction"),
        ):
            if value not in valid:
                raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
        if not 0.0 < self.clip_percentile <= 100.0:
            raise ValueError(f"clip percentile must be in (0, 100], got {self.clip_percentile}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.cmap is not None:
            colormap_lut(self.cmap)  # raises ValueError for an unknown name

    @property
    def colormap(self) -> str:
        """The colormap in use: the given one, or the default for the sign."""
        return self.cmap or ("coolwarm" if self.sign == "all" else "inferno")


@cache
def colormap_lut(name: str) -> np.ndarray:
    """A matplotlib colormap as a (256, 3) uint8 lookup table."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(
            f"unknown colormap {name!r}; any matplotlib colormap works, e.g. inferno, viridis, "
            "magma, coolwarm, RdBu_r, gray"
        ) from None
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def reduce_map(maps: torch.Tensor, reduce: str = "max", sign: str = "abs") -> torch.Tensor:
    """(C, h, w) -> (h, w): magnitudes for abs/positive/negative, a signed map for ``all``."""
    maps = torch.nan_to_num(maps.detach().float().cpu(), nan=0.0, posinf=0.0, neginf=0.0)
    if sign == "all":
        if reduce == "sum":
            return maps.sum(0)
        index = maps.abs().argmax(0, keepdim=True)
        return maps.gather(0, index)[0]
    part = {"abs": maps.abs(), "positive": maps.clamp(min=0), "negative": (-maps).clamp(min=0)}[
        sign
    ]
    return part.amax(0) if reduce == "max" else part.sum(0)


def normalize(values: torch.Tensor, clip_percentile: float = 99.0) -> torch.Tensor | None:
    """Scale by the ``clip_percentile`` of |values| and clip to [-1, 1]; None if nothing to show."""
    magnitude = values.abs().flatten()
    if magnitude.numel() == 0 or not bool((magnitude > 0).any()):
        return None
    scale = float(torch.quantile(magnitude.double(), clip_percentile / 100.0))
    if scale <= 0:
        scale = float(magnitude.max())
    return (values / scale).clamp(-1.0, 1.0)


def render(
    image: Image.Image,
    maps: torch.Tensor,
    geometry: Geometry,
    options: RenderOptions | None = None,
) -> Image.Image:
    """Draw ``maps`` (C, h, w at model resolution) over ``image`` at its original size.

    Warns :class:`EmptyMapWarning` and draws nothing over the photo for an all-zero/NaN map.
    """
    picture, empty = draw(image, maps, geometry, options)
    if empty:
        warnings.warn(EMPTY_MESSAGE, EmptyMapWarning, stacklevel=2)
    return picture


EMPTY_MESSAGE = "the saliency map is all zero (or not finite): drawn as empty"


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
    if image is None and options.style == "overlay":
        raise ValueError("the overlay style needs the photo")
    if image is not None and image.size != geometry.image_size:
        raise ValueError(f"image is {image.size}, the geometry is for {geometry.image_size}")
    width, height = geometry.image_size
    if options.style == "rgb":
        signed = torch.nan_to_num(maps.detach().float().cpu(), nan=0.0, posinf=0.0, neginf=0.0)
        values = normalize(signed, options.clip_percentile)
        if values is None:
            return Image.new("RGB", (width, height), (128, 128, 128)), True
        return _draw(values, geometry, lambda v, rows: 127.5 + 127.5 * v.transpose(1, 2, 0)), False

    reduced = reduce_map(maps, options.reduce, options.sign)
    values = normalize(reduced[None], options.clip_percentile)
    if values is None:
        if image is not None and options.style == "overlay":
            return image.convert("RGB"), True
        return Image.new("RGB", (width, height), (0, 0, 0)), True
    lut = colormap_lut(options.colormap)
    signed = options.sign == "all"

    def colour(v: np.ndarray) -> np.ndarray:
        index = ((v + 1.0) * 127.5 if signed else v * 255.0).round().clip(0, 255).astype(np.uint8)
        return lut[index].astype(np.float32)

    def gray(v: np.ndarray, rows: slice) -> np.ndarray:
        return np.repeat(255.0 * np.abs(v[0])[..., None], 3, axis=-1)

    if options.style == "grayscale":
        return _draw(values, geometry, gray), False
    if options.style == "heatmap":
        return _draw(values, geometry, lambda v, rows: colour(v[0])), False
    assert image is not None
    photo = image if image.mode == "RGB" else image.convert("RGB")

    def overlay(v: np.ndarray, rows: slice) -> np.ndarray:
        band = np.asarray(photo.crop((0, rows.start, width, rows.stop)), dtype=np.float32)
        weight = options.alpha * np.abs(v[0])[..., None]
        return band * (1.0 - weight) + colour(v[0]) * weight

    return _draw(values, geometry, overlay), False


def _draw(values: torch.Tensor, geometry: Geometry, paint) -> Image.Image:
    """Resample ``values`` (K, h, w) onto the image in row chunks and paint each chunk as RGB."""
    width, height = geometry.image_size
    canvas = Image.new("RGB", (width, height))
    for top in range(0, height, _CHUNK_ROWS):
        rows = slice(top, min(top + _CHUNK_ROWS, height))
        chunk = geometry.to_image(values, rows=rows).numpy()
        band = np.clip(paint(chunk, rows) + 0.5, 0, 255).astype(np.uint8)
        canvas.paste(Image.fromarray(band, "RGB"), (0, top))
    return canvas
