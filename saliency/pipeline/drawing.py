"""Drawing, encoding and writing one image's pictures: the work of the writer processes.

Torch-free (NumPy and Pillow), so a writer process starts fast and stays small. It gets the maps
already prepared at model resolution (:func:`saliency.pictures.render.prepare`), re-reads the
photo for overlays (checking it is the content that was explained), paints at the photo's size,
encodes and writes each file atomically. Every picture carries a marker (PNG text, JPEG comment,
WebP XMP) naming what made it, so a later run knows its own files from a stranger's.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..choices import PICTURE_FORMATS
from ..errors import ImageError
from ..files.images import load_image
from ..files.outputs import PartialFiles, write_atomic
from ..files.sources import read_regular
from ..geometry import Geometry
from ..pictures.paint import RenderOptions, boxed, outline, paint
from .png import fast_png

FORMATS = PICTURE_FORMATS
MARKER = "saliency"  # the PNG text key, and the start of the JPEG comment and WebP XMP

# zlib strategy per style: photo-like pictures (overlay, rgb) gain nothing from LZ matching, and
# run-length encoding makes them as small at level 1 as the default strategy at level 6 (886 vs
# 882 KB for a 1024x768 overlay), and a little faster; flat heatmaps keep the default strategy.
PNG_STRATEGY = {"overlay": 3, "rgb": 3}  # zlib's Z_RLE


@dataclass(frozen=True)
class Encoding:
    """How pictures are stored: ``format`` png (lossless), jpg or webp (``quality`` 1-100), and
    the PNG zlib level (1 encodes ~5x faster than Pillow's default 6) where Pillow encodes it:
    RGB pictures go to fpng when it is there (:mod:`.png`), with the same pixels."""

    format: str = "png"
    quality: int = 90
    png_compression: int = 1

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; valid: {', '.join(FORMATS)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1 to 100, got {self.quality}")
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"PNG compression must be 0 to 9, got {self.png_compression}")

    def save(self, picture: Image.Image, path: Path | BinaryIO, style: str, marker: str) -> None:
        """Encode ``picture`` into ``path`` (or a binary file) with ``marker`` embedded."""
        text = f"{MARKER} {marker}"
        if self.format == "png":
            if picture.mode in ("RGB", "RGBA"):
                fast = fast_png(np.asarray(picture), MARKER, marker)
                if fast is not None:
                    if isinstance(path, Path):
                        path.write_bytes(fast)
                    else:  # a binary file, as Pillow's save takes
                        path.write(fast)
                    return
            info = PngInfo()
            info.add_text(MARKER, marker)
            picture.save(
                path,
                format="PNG",
                compress_level=self.png_compression,
                compress_type=PNG_STRATEGY.get(style, -1),
                pnginfo=info,
            )
        elif self.format == "jpg":
            picture.save(path, format="JPEG", quality=self.quality, comment=text.encode())
        else:
            picture.save(path, format="WEBP", quality=self.quality, xmp=text.encode())


def is_ours(path: Path) -> bool:
    """Whether a picture file carries our marker (in any of the formats we write)."""
    try:
        with Image.open(path) as image:
            if MARKER in getattr(image, "text", {}):
                return True
            info = image.info
            stamp = info.get("comment") or info.get("xmp") or b""
            if isinstance(stamp, str):
                stamp = stamp.encode()
            return bytes(stamp).startswith(MARKER.encode())
    except (OSError, ValueError, SyntaxError):
        return False


@dataclass
class Picture:
    """One picture to write: its files (picture first, then the raw map and the geometry with
    ``save_raw``), the prepared planes (None: an empty map), the raw map, and its marker. A
    picture drawn on the model's device comes as ``pixels`` (H, W, 3) to encode, or already
    ``encoded``."""

    outputs: list[str]
    planes: list[np.ndarray] | None
    raw: np.ndarray | None
    marker: str
    pixels: np.ndarray | None = None
    encoded: bytes | None = None
    empty: bool = False  # for a picture drawn on the device: its map was empty
    outline: np.ndarray | None = None  # a region (h, w) at the model's input size, outlined
    box: tuple[float, float, float, float] | None = None  # a detection's, on the photo: drawn
    label: str | None = None  # written at the box's top left (the detection's label, score)

    @property
    def empty_map(self) -> bool:
        return self.empty if self.drawn else self.planes is None

    @property
    def drawn(self) -> bool:
        return self.pixels is not None or self.encoded is not None


@dataclass
class DrawTask:
    """One image's pictures, with all a writer needs and nothing of torch's."""

    photo: Path
    sha256: str
    geometry: Geometry
    out_dir: Path
    render: RenderOptions
    encoding: Encoding
    pictures: list[Picture] = field(default_factory=list)


def draw_and_write(task: DrawTask, partials: PartialFiles | None = None) -> list[bool]:
    """Write every picture of ``task``; returns, per picture, whether its map was empty.

    Raises :class:`ImageError` if the photo changed since it was explained, ``OSError`` if a
    file cannot be written.
    """
    image = None  # the full-size photo, read when an overlay needs it
    if task.render.style == "overlay" and any(not p.drawn for p in task.pictures):
        data, now = read_regular(task.photo)
        if now.sha256 != task.sha256:
            raise ImageError(task.photo, "the file changed while it was being explained")
        image = load_image(task.photo, data=data)
        del data
    empty = []
    for number, picture in enumerate(task.pictures):
        target = task.out_dir / picture.outputs[0]
        if picture.encoded is not None:
            write_atomic(target, partial(Path.write_bytes, data=picture.encoded), partials)
        else:
            if picture.pixels is not None:
                drawn = Image.fromarray(picture.pixels, "RGB")
            else:
                drawn = paint(image, picture.planes, task.geometry, task.render)
                if picture.outline is not None:
                    drawn = outline(drawn, picture.outline, task.geometry)
                if picture.box is not None:
                    drawn = boxed(drawn, picture.box, picture.label)
            style = task.render.style
            save = partial(task.encoding.save, drawn, style=style, marker=picture.marker)
            write_atomic(target, save, partials)
        if picture.raw is not None:
            raw = picture.raw
            write_atomic(task.out_dir / picture.outputs[1], partial(_save_npy, array=raw), partials)
            if number == 0:  # one geometry file per image
                text = json.dumps(task.geometry.to_dict())
                write = partial(Path.write_text, data=text)
                write_atomic(task.out_dir / picture.outputs[2], write, partials)
        empty.append(picture.empty_map)
    return empty


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Through a buffer: numpy's own file writes fail without an errno (a full disk would read
    as one image's fault, not the run's)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    with open(path, "wb") as handle:
        handle.write(buffer.getbuffer())


def marker_text(fingerprint: str, sha256: str) -> str:
    """What our pictures carry: what made them, so a later run knows them as ours."""
    return json.dumps({"fingerprint": fingerprint, "source": sha256})


def start_writer(run_pid: int) -> None:
    """Set up a writer process: signals are left to the run (Ctrl-C reaches the whole process
    group, and the run ends its writers itself once it has kept what is finished), and the writer
    ends itself if the run's process is gone, however it went (even SIGKILL)."""
    import os
    import threading
    import time

    ignore_signals()

    def watch() -> None:
        while _alive(run_pid):
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="saliency-watch-run", daemon=True).start()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: not gone, and not a zombie (a killed run whose parent has
    not reaped it yet still answers ``kill(pid, 0)``)."""
    import os

    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def ignore_signals() -> None:
    """Leave SIGINT and SIGTERM to the run's process."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
