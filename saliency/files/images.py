"""Reading image files into RGB PIL images, whatever their format and mode."""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from .sources import read_regular

_ORIENTATION = 0x0112
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
)


def load_image(
    path: str | os.PathLike[str],
    reduce_for: Callable[[tuple[int, int]], tuple[int, int]] | None = None,
    data: bytes | None = None,
) -> Image.Image:
    """Read an image file as an RGB PIL image in its displayed orientation.

    JPEG, PNG, WebP, BMP, TIFF and GIF (first frame) are read by their content, not their
    extension. EXIF orientation is applied. Alpha is composited on white. 16-bit images are
    scaled to 8 bits (not clipped), 32-bit integer images by the bit depth their values fit,
    float images from [0, 1] (or their own range if outside it). Only regular files are read,
    never a pipe or device.

    Args:
        path: The image file.
        reduce_for: Given the full displayed size, the smallest size the caller needs; a JPEG
            is then decoded at a reduced DCT scale no smaller than that (much faster for camera
            photos). The image's ``info["full_size"]`` is always the full displayed size.
        data: The file's bytes, when the caller already read them.

    Returns:
        The photo, RGB, as it is displayed.

    Raises:
        ImageError: The file cannot be read, is not an image, is truncated or corrupt, or is
            over Pillow's pixel limit (``Image.MAX_IMAGE_PIXELS``, refused before decoding);
            the message names the path and the reason.
    """
    path = Path(path)
    if data is None:
        data = read_regular(path)[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Our own buffer: closing it keeps the decoded pixels (Image.close() would not), so
            # the photo exists once in memory.
            with io.BytesIO(data) as handle:
                image = Image.open(handle)
                image.seek(0)
                turned = image.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
                full = image.size[::-1] if turned else image.size
                if reduce_for is not None and image.format == "JPEG":
                    need = reduce_for(full)
                    image.draft("RGB", need[::-1] if turned else need)
                image.load()
            ImageOps.exif_transpose(image, in_place=True)
            rgb = to_rgb(image)
            rgb.info["full_size"] = full
            return rgb
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, f"refused: too many pixels ({exc})") from None
    except UnidentifiedImageError:
        reason = "empty file" if not data else "not an image Pillow can read"
        raise ImageError(path, reason) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(path, f"broken image: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without clipping high bit depths."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(image), mode)).convert("RGB")
    return image.convert("RGB")


def _value_range(values: np.ndarray, mode: str) -> tuple[float, float]:
    """The range that maps to 0..255: the bit depth's for integers, [0, 1] for floats."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if mode == "F":
        return (0.0, 1.0) if low >= 0 and high <= 1 else (low, high)
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    for top in (255.0, 65535.0):  # 32-bit "I" holding 8- or 16-bit data
        if low >= 0 and high <= top:
            return 0.0, top
    return low, high


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    values = values.astype(np.float64)
    low, high = _value_range(values, mode)
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) / max(
        high - low, 1e-12
    )
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)
