"""Finding the images to explain: files, folders (recursive) and glob patterns."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .images import IMAGE_SUFFIXES
from .outputs import holds_manifest

_MAGIC_CHARS = re.compile(r"[*?[]")  # what makes a path part a glob pattern
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
    special: int = 0  # entries in folders that are not regular files: pipes, devices, bad links
    missing: list[str] = field(default_factory=list)  # named paths that do not exist
    excluded: list[str] = field(default_factory=list)  # output folders met, not read


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


def exists(path: str) -> bool:
    """Whether ``path`` names something, or is a glob pattern that matches something."""
    return os.path.lexists(path) or bool(glob.glob(path, recursive=True))


def close_paths(path: str, count: int = 3) -> list[str]:
    """Paths beside ``path`` (in the folder it names, which must exist) whose names are close
    to its own: what a typo meant."""
    import difflib

    parent, name = os.path.split(path)
    try:
        names = [n for n in os.listdir(parent or ".") if not n.startswith(".")]
    except OSError:
        return []
    return [os.path.join(parent, n) for n in difflib.get_close_matches(name, names, n=count)]


def collect_inputs(
    paths: list[str], recursive: bool = True, exclude: Sequence[str | os.PathLike[str]] = ()
) -> Inputs:
    """Expand ``paths`` into image files, each once, with output names that never collide.

    Files named directly are always tried (a pipe or device among them fails when read, without
    blocking). In folders and glob matches, only regular files (or links to them) that look like
    images are taken; the rest are skipped and counted. Output folders are never read: those in
    ``exclude`` and any folder holding a manifest of ours. The output tree mirrors the inputs
    below their common folder.
    """
    found = Inputs()
    outputs = _OutputFolders(exclude)
    entries: list[tuple[Path, str]] = []  # (path, as shown)
    anchors: list[Path] = []
    for arg in paths:
        named = os.path.lexists(arg)
        matches = [arg] if named else sorted(glob.glob(arg, recursive=True))
        if not matches:
            found.missing.append(arg)
            continue
        for match in matches:
            path = Path(match)
            if path.is_dir():
                if outputs.excluded(path, found, None if named else _fixed_part(arg)):
                    continue
                anchors.append(path.absolute())
                for file in _walk(path, recursive, outputs, found):
                    _add_found(file, entries, found)
            elif named:
                anchors.append(path.absolute().parent)
                entries.append((path, str(path)))
            elif not outputs.excluded(path.parent, found, _fixed_part(arg)):
                anchors.append(path.absolute().parent)
                _add_found(path, entries, found)
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
    for (path, shown), base in zip(unique, output_bases(relative), strict=True):
        found.files.append(InputFile(path, shown, base))
    return found


# The longest last part of an output base, in bytes: file systems take 255, and an output adds
# its method, target and extension (".integrated_gradients_smooth.top10.webp") and, while it is
# written, a temporary name's 15 more.
BASE_NAME_MAX = 180


def output_bases(relative: list[Path]) -> list[Path]:
    """Output bases for inputs at these paths (relative to their common folder), one each and
    never two alike, also where case is ignored: the stem (``sub/cat``), or the whole name where
    stems meet (``cat.jpg`` beside ``cat.png``), with a short hash of the path where even that
    meets another; a last part over :data:`BASE_NAME_MAX` bytes is cut, readably, and given
    the hash of its whole name (the row's ``image`` keeps the real one)."""
    stems = Counter((rel.parent, rel.stem) for rel in relative)
    bases = [
        rel.parent / _fitted(rel.stem if stems[(rel.parent, rel.stem)] == 1 else rel.name)
        for rel in relative
    ]
    taken = Counter(base.as_posix().casefold() for base in bases)
    return [
        base.with_name(_fitted(f"{base.name}~{_digest(rel.as_posix())}"))
        if taken[base.as_posix().casefold()] > 1
        else base
        for base, rel in zip(bases, relative, strict=True)
    ]


def _fitted(name: str) -> str:
    """``name``, or if longer than :data:`BASE_NAME_MAX` bytes, its start (whole characters)
    and a hash of all of it."""
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= BASE_NAME_MAX:
        return name
    start = encoded[: BASE_NAME_MAX - 13].decode("utf-8", "ignore")
    return f"{start}~{_digest(name)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _add_found(file: Path, entries: list[tuple[Path, str]], found: Inputs) -> None:
    """Take a file met in a folder or glob if it is a regular file that looks like an image."""
    try:
        regular = stat.S_ISREG(os.stat(file).st_mode)  # follows links; never opens
    except OSError:  # a broken link, or gone since listed
        regular = False
    if not regular:
        found.special += 1
    elif looks_like_image(file):
        entries.append((file, str(file)))
    else:
        found.skipped += 1


class _OutputFolders:
    """Tells output folders (``--out``, or holding our manifest), each noted once when met."""

    def __init__(self, exclude: Sequence[str | os.PathLike[str]]) -> None:
        self._given = {os.path.realpath(p) for p in exclude}
        self._known: dict[str, bool] = {}

    def is_output(self, folder: Path) -> bool:
        real = os.path.realpath(folder)
        if real not in self._known:
            self._known[real] = real in self._given or holds_manifest(Path(real))
        return self._known[real]

    def excluded(self, folder: Path, found: Inputs, below: Path | None = None) -> bool:
        """Whether ``folder``, or a folder above it up to ``below`` (a glob's fixed part), is an
        output folder; noted in ``found`` once."""
        candidates = [folder]
        if below is not None:
            candidates += [p for p in folder.parents if p == below or below in p.parents]
        for candidate in candidates:
            if self.is_output(candidate):
                if str(candidate) not in found.excluded:
                    found.excluded.append(str(candidate))
                return True
        return False


def _fixed_part(pattern: str) -> Path:
    """The folder a glob pattern starts from: its parts before the first wildcard."""
    parts = []
    for part in Path(pattern).parts:
        if _MAGIC_CHARS.search(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _walk(folder: Path, recursive: bool, outputs: _OutputFolders, found: Inputs) -> list[Path]:
    files: list[Path] = []
    for current, dirs, names in os.walk(folder):
        here = Path(current)
        kept = []
        for name in sorted(dirs):
            if os.path.islink(here / name):  # not followed (as os.walk does): no loops
                continue
            if not outputs.excluded(here / name, found):
                kept.append(name)
        dirs[:] = kept if recursive else []
        files.extend(here / name for name in sorted(names))
    return files
