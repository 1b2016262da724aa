"""Folders of benchmark photos made from sample_images/ at common camera sizes."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
SIZES = {"1024x768": (1024, 768), "4032x3024": (4032, 3024)}


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` JPEGs (quality 90) of ``size``, cropped and resized from the sample photos."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    bases = [
        ImageOps.fit(Image.open(p).convert("RGB"), size, Image.Resampling.BICUBIC) for p in sources
    ]
    paths = []
    for i in range(count):
        path = folder / f"photo{i:04d}.jpg"
        if not path.exists():
            bases[i % len(bases)].save(path, quality=90)
        paths.append(path)
    return paths


def count_folders(work: Path, photos: list[Path], counts: tuple[int, ...]) -> dict[int, Path]:
    """A folder of links to the first ``n`` photos for each ``n`` in ``counts``, under ``work``:
    the inputs of a marginal rate (``end_to_end.marginal``)."""
    folders = {}
    for count in counts:
        folder = work / f"n{count}"
        folder.mkdir(parents=True, exist_ok=True)
        for p in photos[:count]:
            if not (folder / p.name).exists():
                (folder / p.name).symlink_to(p)
        folders[count] = folder
    return folders
