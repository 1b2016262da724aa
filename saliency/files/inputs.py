"""Finding the images to explain: files, folders (recursive) and glob patterns."""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .images import IMAGE_SUFFIXES

# Leading bytes of the formats we read, to find images with an unexpected extension in folders.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


@dataclass(frozen=True)
class InputFile:
    """One image to explain: ``path`` to read, ``shown`` as the user named it, ``base`` the
    output path under the output folder without method and extension (``sub/dir/stem``)."""

    path: Path
    shown: str
    base: Path


@dataclass
class Inputs:
    """What :func:`collect_inputs` found."""

    files: list[InputFile] = field(default_factory=list)
    skipped: int = 0  # non-image files met in folders
    missing: list[str] = field(default_factory=list)  # named paths that do not exist


def looks_like_image(path: Path) -> bool:
    """True for an image extension, or an image format's leading bytes."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return False
    if head.startswith(b"RIFF"):
        return head[8:12] == b"WEBP"
    return head.startswith(_MAGIC)


def collect_inputs(paths: list[str], recursive: bool = True) -> Inputs:
    """Expand ``paths`` into image files, each once, with output names that never collide.

    Files named directly are always tried; in folders, non-images are skipped and counted. The
    output tree mirrors the inputs below their common folder.
    """
    found = Inputs()
    entries: list[tuple[Path, str]] = []  # (path, as shown)
    anchors: list[Path] = []
    for arg in paths:
        matches = [arg] if os.path.lexists(arg) else sorted(glob.glob(arg, recursive=True))
        if not matches:
            found.missing.append(arg)
            continue
        for match in matches:
            path = Path(match)
            if path.is_dir():
                anchors.append(path.absolute())
                for file in _walk(path, recursive):
                    if looks_like_image(file):
                        entries.append((file, str(file)))
                    else:
                        found.skipped += 1
            else:
                anchors.append(path.absolute().parent)
                entries.append((path, str(path)))
    seen: set[str] = set()
    unique = []
    for path, shown in entries:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, shown))
    if not unique:
        return found
    root = Path(os.path.commonpath([str(a) for a in anchors]))
    relative = [path.absolute().relative_to(root) for path, _ in unique]
    stems = Counter((rel.parent, rel.stem) for rel in relative)
    for (path, shown), rel in zip(unique, relative, strict=True):
        name = rel.stem if stems[(rel.parent, rel.stem)] == 1 else rel.name
        found.files.append(InputFile(path, shown, rel.parent / name))
    return found


def _walk(folder: Path, recursive: bool) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() or p.is_symlink())
    files: list[Path] = []
    for current, dirs, names in os.walk(folder):
        dirs.sort()
        files.extend(Path(current) / name for name in sorted(names))
    return files
