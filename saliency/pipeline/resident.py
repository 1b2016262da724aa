"""The device-resident stages of a folder run: decode, preprocess and draw where the model is.

On a GPU, decoding and drawing in CPU threads starve the model (the engine explains thousands of
images a second; Pillow draws tens). Here reader threads only read bytes; JPEGs are decoded on
the model's device in batches (TorchCodec's decoder, or torchvision's: see :mod:`.codecs`),
preprocessed there, and the pictures are drawn there too (upsample, colormap by lookup table,
blend), then JPEGs are encoded there; PNG and WebP pictures go to the writer processes as
pixels. Other formats (and JPEGs the decoder refuses) are decoded by Pillow on the CPU.

The same code runs on the CPU (that is how it is tested without a GPU). Pictures match the CPU
path's in style and geometry, within a few levels: the photo is decoded at full size rather than
at a reduced DCT scale, and the decoders' and resamplers' rounding differ.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..files.images import load_image
from ..files.inputs import InputFile
from ..files.sources import SourceId, read_regular
from ..geometry import Geometry
from ..models.loading import LoadedModel
from ..pictures.paint import OUTLINE, RenderOptions, colormap_lut, outline_width
from ..pictures.render import prepare_deferred
from .codecs import CodecError, decode_jpegs, encode_jpeg
from .drawing import MARKER

CPU_DECODED = "not a JPEG: decoded on the CPU (the device decodes JPEG only; said once per run)"
REFUSED = "decoded on the CPU: the device's JPEG decoder refused it ({why}; said once per run)"
REDONE = "redone on the CPU path: the device failed on it ({why}; said once per run)"
_JPEG = b"\xff\xd8\xff"


@dataclass
class Raw:
    """An input's bytes, read by a reader thread, or why they could not be read."""

    input: InputFile
    data: bytes | None = None
    source: SourceId | None = None
    error: str | None = None


def read(file: InputFile) -> Raw:
    try:
        data, source = read_regular(file.path)
    except Exception as exc:  # never let one bad file stop the run
        return Raw(file, error=getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}")
    return Raw(file, data, source)


@dataclass
class Photo:
    """A decoded photo, uint8 (3, H, W) on the device, and why the CPU decoded it (None: the
    device did); or, with ``pixels`` None, why it could not be decoded at all."""

    pixels: torch.Tensor | None
    note: str | None = None


def decode_batch(raws: list[Raw], device: torch.device) -> list[Photo]:
    """Each photo on ``device``, in its displayed orientation, or why not. JPEGs are decoded
    together on the device; the rest, and any JPEG the device decoder refuses, one by one by
    Pillow, which then also names a fault that is the file's."""
    out: list[torch.Tensor | str] = [""] * len(raws)
    refused: dict[int, str] = {}
    jpegs = [i for i, raw in enumerate(raws) if raw.data and raw.data.startswith(_JPEG)]
    if jpegs:
        encoded = [
            torch.frombuffer(bytearray(raws[i].data or b""), dtype=torch.uint8) for i in jpegs
        ]
        try:
            for i, pixels in zip(jpegs, decode_jpegs(encoded, device), strict=True):
                out[i] = pixels
        except CodecError:  # one bad JPEG fails the batch: decode them one at a time
            for i, data in zip(jpegs, encoded, strict=True):
                try:
                    (out[i],) = decode_jpegs([data], device)
                except CodecError as exc:  # left to Pillow below, which names a real fault
                    refused[i] = why(exc.__cause__ or exc)
    photos = []
    for i, raw in enumerate(raws):
        decoded = out[i]
        if isinstance(decoded, torch.Tensor) or raw.data is None:
            photos.append(Photo(decoded if isinstance(decoded, torch.Tensor) else None))
            continue
        try:
            image = load_image(raw.input.path, data=raw.data)
        except Exception as exc:
            photos.append(Photo(None, getattr(exc, "reason", None) or why(exc)))
            continue
        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).to(device)
        note = REFUSED.format(why=refused[i]) if i in refused else CPU_DECODED
        photos.append(Photo(pixels, note))
    return photos


def why(exc: BaseException) -> str:
    """An exception in one line, for a note: its type and the first line of its message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


def preprocess(
    photo: torch.Tensor, loaded: LoadedModel, fit: str | None
) -> tuple[torch.Tensor, Geometry]:
    """The model's input (3, h, w) from a uint8 photo on the device, and its geometry: the
    same box and size as the CPU path, resampled by torch (antialiased) instead of Pillow."""
    prep = loaded.preprocessing
    height, width = photo.shape[-2:]
    geometry = prep.geometry((int(width), int(height)), fit)
    left, top, right, bottom = (round(v) for v in geometry.box)
    region = photo[:, top:bottom, left:right].float()[None]
    mode = {"nearest": "nearest", "bilinear": "bilinear"}.get(prep.interpolation, "bicubic")
    size = geometry.input_size[::-1]
    if mode == "nearest":
        resized = F.interpolate(region, size=size, mode=mode)
    else:
        resized = F.interpolate(region, size=size, mode=mode, align_corners=False, antialias=True)
    pixels = resized[0].round_().clamp_(0, 255).div_(255.0)  # as Pillow: 8-bit pixels
    mean, std = (
        _on_device(tuple(prep.mean), photo.device),
        _on_device(tuple(prep.std), photo.device),
    )
    return pixels.sub_(mean.view(3, 1, 1)).div_(std.view(3, 1, 1)), geometry


@functools.cache
def _on_device(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """Constants made on the device once per run, not copied from the host for every photo
    (a copy from pageable memory makes the host wait for the device)."""
    return torch.tensor(values, device=device)


@functools.cache
def _lut(colormap: str, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(colormap_lut(colormap)).to(device).long()  # (256, 3)


def paint(
    photo: torch.Tensor, maps: torch.Tensor, geometry: Geometry, options: RenderOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """The picture, uint8 (3, H, W) on the photo's device, as :func:`~..pictures.paint.paint`
    draws it, and whether the map was empty, as a boolean tensor there: nothing here makes the
    host wait for the device (read the flag once the picture is read)."""
    device = photo.device
    values, empty = prepare_deferred(maps.to(device), options)
    signed = options.style == "rgb" or options.sign == "all"
    index = _to_index(_upsample(values, geometry), signed)  # (P, H, W) int64
    if options.style == "rgb":
        drawn = index.to(torch.uint8)
        return torch.where(empty, torch.full_like(drawn, 128), drawn), empty
    magnitude = _magnitudes(signed, device)
    if options.style == "grayscale":
        drawn = magnitude[index[0]].to(torch.uint8).expand(3, -1, -1).contiguous()
        return torch.where(empty, torch.zeros_like(drawn), drawn), empty
    heat = _lut(options.colormap, device)[index[0]].permute(2, 0, 1)  # (3, H, W)
    if options.style == "heatmap":
        drawn = heat.to(torch.uint8)
        return torch.where(empty, torch.zeros_like(drawn), drawn), empty
    weight = (options.alpha * magnitude.double()).round().clamp(max=255).long()
    mask = weight[index[0]][None]
    # Pillow's paste with a mask, exactly: (photo * (255 - m) + heat * m) / 255, rounded
    blended = photo.long() * (255 - mask) + heat * mask + 128
    drawn = ((blended + (blended >> 8)) >> 8).to(torch.uint8)
    return torch.where(empty, photo, drawn), empty


@functools.cache
def _magnitudes(signed: bool, device: torch.device) -> torch.Tensor:
    """Each of the 256 picture levels' magnitude (0..255): the level itself, or its distance
    from the middle (128) for signed maps."""
    magnitude = torch.arange(256, device=device)
    if signed:
        magnitude = ((magnitude - 128).abs() * 255 / 127).round().clamp(max=255).long()
    return magnitude


def _upsample(values: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Maps (P, h, w) at model resolution onto the photo (P, H, W), bilinear with pixel centres,
    0 outside the box (see :meth:`Geometry.resample`)."""
    width, height = geometry.image_size
    left, top, right, bottom = geometry.box
    in_w, in_h = geometry.input_size
    device = values.device
    xs = ((torch.arange(width, device=device) + 0.5 - left) * (in_w / (right - left))) / in_w
    ys = ((torch.arange(height, device=device) + 0.5 - top) * (in_h / (bottom - top))) / in_h
    grid = torch.stack(torch.meshgrid(ys * 2 - 1, xs * 2 - 1, indexing="ij")[::-1], dim=-1)
    out = F.grid_sample(
        values[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False
    )[0]
    inside = (xs >= 0) & (xs < 1)
    inside_rows = (ys >= 0) & (ys < 1)
    return out * (inside_rows[:, None] & inside[None, :])


def outline(pixels: torch.Tensor, region: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """``pixels`` (uint8 (3, H, W)) with the edge of ``region`` (a mask (h, w) at the model's
    input size) drawn as :func:`~..pictures.paint.outline` draws it, on the pixels' device."""
    inside = _upsample(region.to(pixels.device, torch.float32)[None], geometry) >= 0.5  # (1, H, W)
    width = outline_width(geometry.image_size)
    # a min filter of (2w+1)^2 whose window ignores what lies beyond the photo, as Pillow's
    shrunk = -F.max_pool2d(-inside.float()[None], 2 * width + 1, stride=1, padding=width)[0]
    edge = inside & (shrunk < 0.5)
    colour = torch.tensor(OUTLINE, dtype=torch.uint8, device=pixels.device).view(3, 1, 1)
    return torch.where(edge, colour, pixels)


def _to_index(values: torch.Tensor, signed: bool) -> torch.Tensor:
    """As the CPU path: [0, 1] -> 0..255, or [-1, 1] -> 1..255 with 0 at 128, rounded."""
    scaled = values * 127.0 + 128.5 if signed else values * 255.0 + 0.5
    return scaled.floor().clamp(0, 255).long()


def encode(picture: torch.Tensor, quality: int, marker: str) -> bytes:
    """A JPEG of ``picture`` (uint8 (3, H, W), encoded where it is), with our marker as its
    comment (a COM segment after the start of image)."""
    data = bytes(encode_jpeg(picture, quality).cpu().numpy().tobytes())
    text = f"{MARKER} {marker}".encode()
    return data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + data[2:]
