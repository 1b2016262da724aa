"""Writing results safely: atomic files, partial files removed when a run stops, and knowing an
output folder of ours (see :mod:`.manifest` for the manifest itself)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MANIFEST = "results.jsonl"
LOCK_FILE = ".saliency.lock"  # held by the run writing into a folder (see .lock)
_UMASK = os.umask(0)
os.umask(_UMASK)


class Cancelled(Exception):
    """A write was refused because the run it belongs to is stopping."""


class PartialFiles:
    """The temporary files of writes in progress, so that a stopping run can remove them all
    (even those of a writer stuck in a write) and refuse new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[Path] = set()
        self._closed = False

    def add(self, path: Path) -> None:
        with self._lock:
            if self._closed:
                path.unlink(missing_ok=True)
                raise Cancelled(str(path))
            self._paths.add(path)

    def remove(self, path: Path) -> None:
        with self._lock:
            self._paths.discard(path)

    def discard_all(self) -> None:
        """Remove every temporary file still open and refuse new ones: a writer still writing
        writes into an unlinked file, and its final rename fails."""
        with self._lock:
            self._closed = True
            for path in self._paths:
                path.unlink(missing_ok=True)
            self._paths.clear()


@contextmanager
def atomic_path(path: Path, partials: PartialFiles | None = None) -> Iterator[Path]:
    """A temporary path in ``path``'s folder, renamed to ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    if partials is not None:
        partials.add(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; outputs are not
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        if partials is not None:
            partials.remove(tmp)


def write_atomic(
    path: Path, write: Callable[[Path], Any], partials: PartialFiles | None = None
) -> None:
    """Call ``write(tmp_path)`` and move the result into place; no half-written file remains."""
    with atomic_path(path, partials) as tmp:
        write(tmp)


def holds_manifest(folder: Path) -> bool:
    """Whether ``folder`` is one of our output folders: it holds our lock file, or a regular
    ``results.jsonl`` whose first line is one of our rows."""
    path = folder / MANIFEST
    if os.path.lexists(folder / LOCK_FILE):
        return True
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a link is no manifest of ours
            return False
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline(1 << 16)
        row = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(row, dict) and {"image", "status", "outputs"} <= row.keys()


def remove_partial_files(
    folder: Path, of: Collection[str] | None = None, stems: Collection[str] = ()
) -> int:
    """Remove the temporary files of writes that never finished under ``folder`` (those of
    :func:`atomic_path`: ``.NAME.XXXX.part``), e.g. of killed writer processes: all of them
    (only safe while holding the folder alone), or only those of the outputs named in ``of``
    or named ``STEM.*`` for a stem in ``stems`` (an image's pictures whose names were known only
    once drawn) (paths relative to ``folder``; what a shard may remove). Returns how many."""
    removed = 0
    for current, _, names in os.walk(folder):
        for name in names:
            if not (name.startswith(".") and name.endswith(".part")):
                continue
            if of is not None:
                target = name[1:].rsplit(".", 2)[0]  # .NAME.XXXX.part -> NAME
                relative = Path(current, target).relative_to(folder).as_posix()
                if relative not in of and not any(relative.startswith(f"{s}.") for s in stems):
                    continue
            Path(current, name).unlink(missing_ok=True)
            removed += 1
    return removed
