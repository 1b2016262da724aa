"""Painting prepared map planes over a photo: colormaps, blending, bands of rows.

Torch-free (NumPy and Pillow): the processes that draw and encode pictures import only this. The
planes come from :func:`saliency.pictures.render.prepare`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..choices import REDUCTIONS, SIGNS, STYLES
from ..geometry import Geometry

# pixels resampled and drawn at a time: one band for photos up to 4 MP, bands of rows beyond,
# so memory stays flat for huge photos
_BAND_PIXELS = 4_000_000


@dataclass(frozen=True)
class RenderOptions:
    """How to draw a map.

    Attributes:
        style: ``overlay`` (the colormap blended over the photo, opacity growing with the
            map's strength), ``heatmap`` (the colormap alone), ``rgb`` (the signed map as
            colours, gray = 0, as the papers show Guided Backprop) or ``grayscale``.
        reduce: How colour channels become one value per pixel: ``max`` of |value| (as
            Simonyan et al.) or ``sum``.
        sign: The part of the map shown: ``abs``, ``positive``, ``negative`` or ``all``
            (diverging).
        clip_percentile: The map is scaled to this percentile of its |value|, in (0, 100].
        cmap: Any matplotlib colormap; None: ``inferno``, or ``coolwarm`` for ``sign="all"``.
        alpha: The overlay's opacity at the strongest pixels, in [0, 1].

    Raises:
        ValueError: An unknown style, sign, reduction or colormap, or a percentile or alpha
            out of range.
    """

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


def paint(
    image: Image.Image | None,
    planes: Sequence[np.ndarray] | None,
    geometry: Geometry,
    options: RenderOptions,
) -> Image.Image:
    """The picture at the photo's size: ``planes`` (see ``prepare``) resampled onto it and drawn
    in ``options.style``; for None (an empty map), the photo alone or a blank frame.

    Drawn by Pillow in bands of rows, so memory stays flat and threads run in parallel.
    """
    if image is None and options.style == "overlay":
        raise ValueError("the overlay style needs the photo")
    if image is not None and image.size != geometry.image_size:
        raise ValueError(f"image is {image.size}, the geometry is for {geometry.image_size}")
    width, height = geometry.image_size
    if planes is None:
        if image is not None and options.style == "overlay":
            return image.convert("RGB")
        fill = (128, 128, 128) if options.style == "rgb" else (0, 0, 0)
        return Image.new("RGB", (width, height), fill)
    floats = [Image.fromarray(np.asarray(plane, dtype=np.float32), "F") for plane in planes]
    signed = options.style == "rgb" or options.sign == "all"
    photo = image if image is None or image.mode == "RGB" else image.convert("RGB")
    painter = _painter(options, signed, photo, width)
    band = max(64, _BAND_PIXELS // width)
    canvas = None if band >= height else Image.new("RGB", (width, height))
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        indices = [_to_index(geometry.resample(plane, rows), signed) for plane in floats]
        if canvas is None:  # one band: it is the picture
            return painter(indices, rows)
        canvas.paste(painter(indices, rows), (0, top))
    assert canvas is not None
    return canvas


def _to_index(band: Image.Image, signed: bool) -> Image.Image:
    """Values to 0..255 (mode L), rounded: [0, 1] -> 0..255, or [-1, 1] -> 1..255 with 0 at 128.

    (Pillow's float-to-L conversion truncates, hence the + 0.5.)
    """
    return band.point(lambda v: v * 127.0 + 128.5 if signed else v * 255.0 + 0.5).convert("L")


def _painter(
    options: RenderOptions, signed: bool, photo: Image.Image | None, width: int
) -> Callable[[list[Image.Image], slice], Image.Image]:
    """The function that turns a band's index images (which it may reuse) into a new RGB
    picture of the band."""
    # |value| as 0..255, from an index
    magnitude = [min(255, round(abs(i - 128) * 255 / 127)) if signed else i for i in range(256)]
    if options.style == "rgb":
        return lambda indices, rows: Image.merge("RGB", indices)
    if options.style == "grayscale":
        return lambda indices, rows: indices[0].point(magnitude).convert("RGB")
    palette = colormap_lut(options.colormap).tobytes()

    def heat(index: Image.Image) -> Image.Image:
        index.putpalette(palette)  # in place: the index becomes a palette image
        return index.convert("RGB")

    if options.style == "heatmap":
        return lambda indices, rows: heat(indices[0])
    weight = [min(255, round(options.alpha * m)) for m in magnitude]
    assert photo is not None

    def overlay(indices: list[Image.Image], rows: slice) -> Image.Image:
        opacity = indices[0].point(weight)
        band = photo.crop((0, rows.start, width, rows.stop))  # a copy, painted in place
        band.paste(heat(indices[0]), None, opacity)
        return band

    return overlay


OUTLINE = (255, 255, 255)  # a region's outline: white, seen over every colormap and photo


def outline_width(size: tuple[int, int]) -> int:
    """The outline's width in pixels: about 1/256 of the picture's shorter side, at least 1."""
    return max(1, round(min(size) / 256))


def outline(picture: Image.Image, region: np.ndarray, geometry: Geometry) -> Image.Image:
    """``picture`` with the edge of ``region`` drawn on it: a mask (h, w) at the model's input
    size (a segmentation's pixels of one class), resampled onto the photo as maps are, its
    inner edge painted :data:`OUTLINE`. The photo's own border is no edge."""
    width, height = geometry.image_size
    plane = Image.fromarray(np.asarray(region, dtype=np.float32), "F")
    inside = np.asarray(geometry.resample(plane)) >= 0.5
    size = 2 * outline_width((width, height)) + 1
    shrunk = Image.fromarray(inside.astype(np.uint8) * 255, "L").filter(ImageFilter.MinFilter(size))
    edge = inside & (np.asarray(shrunk) == 0)
    pixels = np.array(picture.convert("RGB"))
    pixels[edge] = OUTLINE
    return Image.fromarray(pixels, "RGB")


def boxed(
    picture: Image.Image, box: tuple[float, float, float, float], text: str | None
) -> Image.Image:
    """``picture`` (the photo's size) with a detection's ``box`` (on the photo, in its pixels)
    drawn :data:`OUTLINE` inside its edge, as :func:`outline` draws a region's edge, and
    ``text`` (its label and score) white on black above its top left, inside the photo."""
    drawn = picture.convert("RGB")
    width = outline_width(drawn.size)
    draw = ImageDraw.Draw(drawn)
    x1, y1 = max(0, round(box[0])), max(0, round(box[1]))
    x2 = min(drawn.size[0] - 1, max(x1, round(box[2]) - 1))
    y2 = min(drawn.size[1] - 1, max(y1, round(box[3]) - 1))
    draw.rectangle((x1, y1, x2, y2), outline=OUTLINE, width=width)
    if text:
        font = ImageFont.load_default(size=max(10, round(min(drawn.size) / 32)))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 4, bottom - top + 4
        x = min(x1, max(0, drawn.size[0] - w))
        y = y1 - h if y1 >= h else y1
        draw.rectangle((x, y, x + w, y + h), fill=(0, 0, 0))
        draw.text((x + 2 - left, y + 2 - top), text, fill=OUTLINE, font=font)
    return drawn
