"""Thumbnails for a report: small JPEGs under ``thumbs/``, made once and remade only when their
source is newer, so a report of 10,000 images loads a few kilobytes per card."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from ..files.confine import is_inside
from ..files.outputs import write_atomic

FOLDER = "thumbs"
SIZE = 320  # the longer side in pixels: sharp at twice the cards' 160 CSS pixels
QUALITY = 80


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail to have: made from ``source`` at ``path``; its size once made."""

    source: Path
    path: Path
    width: int = 0
    height: int = 0


def thumbnail_name(kind: str, name: str) -> str:
    """Where a thumbnail goes, relative to the folder: ``thumbs/pictures/sub/cat.guided.jpg``."""
    return f"{FOLDER}/{kind}/{name}.jpg"


def make_thumbnails(wanted: Iterable[Thumbnail], threads: int | None = None) -> list[Thumbnail]:
    """Make (or keep, when newer than its source) each thumbnail; returns them with their sizes,
    or with size 0 for a source that cannot be read. Pillow releases the GIL: threads suffice."""
    todo = list(wanted)
    workers = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(_make, todo))


def _make(thumb: Thumbnail) -> Thumbnail:
    try:
        made = thumb.path.stat()
        if made.st_mtime_ns >= thumb.source.stat().st_mtime_ns:
            with Image.open(thumb.path) as kept:
                return Thumbnail(thumb.source, thumb.path, *kept.size)
    except (OSError, ValueError):
        pass
    try:
        with Image.open(thumb.source) as image:
            image.draft("RGB", (SIZE, SIZE))  # JPEG: decode at a fraction of the size
            small = ImageOps.exif_transpose(image).convert("RGB")
            small.thumbnail((SIZE, SIZE), Image.Resampling.BICUBIC)
    except (OSError, ValueError, Image.DecompressionBombError):
        return thumb
    write_atomic(thumb.path, lambda tmp: small.save(tmp, "JPEG", quality=QUALITY))
    return Thumbnail(thumb.source, thumb.path, *small.size)


def prune(folder: Path, keep: set[Path]) -> int:
    """Remove thumbnails under ``folder/thumbs`` that the report no longer shows."""
    removed = 0
    root = folder / FOLDER
    if not is_inside(folder, FOLDER, follow=True):  # a link leading out: not ours to prune
        return 0
    for current, _, names in os.walk(root):
        for name in names:
            path = Path(current, name)
            if name.endswith(".jpg") and path not in keep:
                path.unlink(missing_ok=True)
                removed += 1
    return removed
