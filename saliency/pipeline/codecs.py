"""JPEG decoding and encoding on the model's device: TorchCodec where it is installed and works,
torchvision's codecs otherwise.

torchvision 0.29 deprecates its image codecs for TorchCodec's. TorchCodec (0.17) decodes JPEGs to
the same pixels as torchvision (EXIF orientation, gray and CMYK included: see the tests), in
batches, and on a GPU with nvJPEG. It is a binary of its own, built against one torch, so where
its import or a small self-test fails, torchvision's codecs do the work.
``SALIENCY_JPEG_CODEC=torchvision`` chooses them.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torchvision.io import ImageReadMode
from torchvision.io import decode_jpeg as _tv_decode
from torchvision.io import encode_jpeg as _tv_encode

# torchvision's codecs warn at every call that they are deprecated; where they are the fallback,
# they work, so our users are spared that one notice.
warnings.filterwarnings(
    "ignore",
    message="The image decoding and encoding capabilities of TorchVision are deprecated",
    category=DeprecationWarning,
)


class CodecError(RuntimeError):
    """A JPEG the codec could not decode (the batch then goes one photo at a time)."""


@cache
def _torchcodec() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """TorchCodec's JPEG decoder and encoder, if installed, allowed and right here (a small
    picture encoded by torchvision decodes to torchvision's pixels), else None."""
    if os.environ.get("SALIENCY_JPEG_CODEC", "").strip().lower() == "torchvision":
        return None
    try:
        from torchcodec.decoders import decode_jpeg
        from torchcodec.encoders import JpegEncoder

        probe = torch.arange(3 * 16 * 24, dtype=torch.int64).reshape(3, 16, 24).mul(7) % 256
        data = _tv_encode(probe.to(torch.uint8), quality=95)
        expected = _tv_decode(data, mode=ImageReadMode.RGB)
        decoded = decode_jpeg(data, mode="RGB")
        if not isinstance(decoded, torch.Tensor) or not torch.equal(decoded, expected):
            return None

        def encode(picture: torch.Tensor, quality: int) -> torch.Tensor:
            return JpegEncoder(picture).to_tensor(quality=quality)

        return decode_jpeg, encode
    except Exception:  # not installed, or built for another torch: torchvision's codecs
        return None


def codec_name() -> str:
    """The JPEG codec the device path uses here: ``TorchCodec`` or ``torchvision``."""
    return "TorchCodec" if _torchcodec() is not None else "torchvision"


def decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEGs (1-D uint8 tensors) as RGB uint8 (3, H, W) on ``device``, in their displayed
    orientation; :class:`CodecError` if any of them fails."""
    found = _torchcodec()
    try:
        if found is not None:
            decoded = found[0](data, mode="RGB", device=device)
        elif device.type == "cpu":
            decoded = _tv_decode(
                data, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True
            )
        else:  # nvJPEG ignores apply_exif_orientation (seen on an H200): turned here
            decoded = _tv_decode(data, mode=ImageReadMode.RGB, device=device)
            decoded = [orient(d, exif_orientation(b)) for d, b in zip(decoded, data, strict=True)]
    except Exception as exc:
        raise CodecError(str(exc) or type(exc).__name__) from exc
    return list(decoded)


def exif_orientation(data: torch.Tensor) -> int:
    """The EXIF orientation (1 to 8) of a JPEG's bytes, 1 where it has none; the header alone is
    read, not the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
            value = image.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(pixels: torch.Tensor, orientation: int) -> torch.Tensor:
    """``pixels`` (C, H, W) as displayed under EXIF ``orientation``, as Pillow's
    ``ImageOps.exif_transpose`` turns them."""
    h, w = -2, -1
    if orientation == 2:
        return pixels.flip(w)
    if orientation == 3:
        return pixels.flip(h, w)
    if orientation == 4:
        return pixels.flip(h)
    if orientation == 5:
        return pixels.transpose(h, w)
    if orientation == 6:
        return pixels.rot90(-1, (h, w))
    if orientation == 7:
        return pixels.flip(h, w).transpose(h, w)
    if orientation == 8:
        return pixels.rot90(1, (h, w))
    return pixels


def encode_jpeg(picture: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG (1-D uint8 tensor, where ``picture`` is) of ``picture``, uint8 (3, H, W)."""
    found = _torchcodec()
    if found is not None:
        return found[1](picture, quality)
    return _tv_encode(picture, quality=quality)
