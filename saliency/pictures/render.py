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

from ..choices import REDUCTIONS, SIGNS, STYLES
from ..models.preprocess import Geometry

_CHUNK_ROWS = 256  # rows resampled and drawn at a time: memory stays flat for huge photos


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


def _finite(maps: torch.Tensor) -> torch.Tensor:
    """A float CPU copy with NaN and infinities set to 0."""
    return torch.nan_to_num(maps.detach().float().cpu(), nan=0.0, posinf=0.0, neginf=0.0)


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
    magnitude = values.abs().flatten()
    if magnitude.numel() == 0 or not bool((magnitude > 0).any()):
        return None
    scale = float(torch.quantile(magnitude.double(), clip_percentile / 100.0))
    if scale <= 0:
        scale = float(magnitude.max())
    return (values / scale).clamp(-1.0, 1.0)


def render(
    image: Image.Image | None,
    maps: torch.Tensor,
    geometry: Geometry,
    options: RenderOptions | None = None,
) -> Image.Image:
    """Draw ``maps`` (C, h, w at model resolution) over ``image`` at its original size
    (``image`` may be None for every style but ``overlay``).

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
    Drawing is done by Pillow in bands of rows, so memory stays flat and threads run in parallel.
    """
    options = options or RenderOptions()
    if image is None and options.style == "overlay":
        raise ValueError("the overlay style needs the photo")
    if image is not None and image.size != geometry.image_size:
        raise ValueError(f"image is {image.size}, the geometry is for {geometry.image_size}")
    width, height = geometry.image_size
    if options.style == "rgb":
        values = normalize(_finite(maps), options.clip_percentile)
        if values is not None and values.shape[0] == 1:  # a one-channel map (Grad-CAM): gray
            values = values.expand(3, -1, -1)
        empty_fill = (128, 128, 128)
    else:
        reduced = reduce_map(maps, options.reduce, options.sign)
        values = normalize(reduced[None], options.clip_percentile)
        empty_fill = (0, 0, 0)
    if values is None:
        if image is not None and options.style == "overlay":
            return image.convert("RGB"), True
        return Image.new("RGB", (width, height), empty_fill), True

    planes = [Image.fromarray(plane.numpy().astype(np.float32), "F") for plane in values]
    signed = options.style == "rgb" or options.sign == "all"
    photo = image if image is None or image.mode == "RGB" else image.convert("RGB")
    paint = _painter(options, signed, photo, width)
    canvas = Image.new("RGB", (width, height))
    for top in range(0, height, _CHUNK_ROWS):
        rows = slice(top, min(top + _CHUNK_ROWS, height))
        indices = [_to_index(geometry.resample(plane, rows), signed) for plane in planes]
        canvas.paste(paint(indices, rows), (0, top))
    return canvas, False


def _to_index(band: Image.Image, signed: bool) -> Image.Image:
    """Values to 0..255 (mode L), rounded: [0, 1] -> 0..255, or [-1, 1] -> 1..255 with 0 at 128.

    (Pillow's float-to-L conversion truncates, hence the + 0.5.)
    """
    return band.point(lambda v: v * 127.0 + 128.5 if signed else v * 255.0 + 0.5).convert("L")


def _painter(options: RenderOptions, signed: bool, photo: Image.Image | None, width: int):
    """The function that turns a band's index images into its RGB picture."""
    # |value| as 0..255, from an index
    magnitude = [min(255, round(abs(i - 128) * 255 / 127)) if signed else i for i in range(256)]
    if options.style == "rgb":
        return lambda indices, rows: Image.merge("RGB", indices)
    if options.style == "grayscale":
        return lambda indices, rows: indices[0].point(magnitude).convert("RGB")
    palette = colormap_lut(options.colormap).tobytes()

    def heat(index: Image.Image) -> Image.Image:
        coloured = index.copy()
        coloured.putpalette(palette)
        return coloured.convert("RGB")

    if options.style == "heatmap":
        return lambda indices, rows: heat(indices[0])
    weight = [min(255, round(options.alpha * m)) for m in magnitude]
    assert photo is not None

    def overlay(indices: list[Image.Image], rows: slice) -> Image.Image:
        band = photo.crop((0, rows.start, width, rows.stop))
        return Image.composite(heat(indices[0]), band, indices[0].point(weight))

    return overlay
