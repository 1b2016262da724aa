"""Writing results safely: atomic files, and a JSON-lines manifest appended to as a run goes and
compacted to one row per picture at its end."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

MANIFEST = "results.jsonl"
LOCK_FILE = ".saliency.lock"  # held by the run writing into a folder (see .lock)
_UMASK = os.umask(0)
os.umask(_UMASK)
MANIFEST_KEYS = (
    "image",
    "model",
    "method",
    "target",
    "target_name",
    "probability",
    "top5",
    "outputs",
    "status",
    "error",
    "source",
    "fingerprint",
)
# Keys that only some methods' rows carry, after the base keys: the Grad-CAM layer, SmoothGrad's
# settings, and Integrated Gradients' baseline, steps and completeness check.
MANIFEST_EXTRA_KEYS = (
    "layer",
    "smooth",
    "noise",
    "seed",
    "baseline",
    "steps",
    "score_difference",
    "completeness_error",
)


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


def row_key(row: dict[str, Any]) -> str:
    """What a manifest row is about: its picture (one per image, method and target), or for a
    row without outputs (an error), its image."""
    outputs = row.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        return "output:" + outputs[0]
    return f"image:{row.get('image')}"


class Manifest:
    """``results.jsonl``: one complete JSON object per line, flushed as each is written.

    Rows are appended as they come (a crash loses at most the line being written), then
    :meth:`close` rewrites the file atomically with one row per key (:func:`row_key`), the
    latest. ``rows`` holds those latest rows, by key, from earlier runs and this one.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / MANIFEST
        folder.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = _read_rows(self.path)
        self._lock = threading.Lock()
        self._closed = False
        # held open for the run, closed by close()
        self._handle: IO[str] = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, row: dict[str, Any]) -> bool:
        """Append one row: every key of :data:`MANIFEST_KEYS`, then those of
        :data:`MANIFEST_EXTRA_KEYS` that the row has. False (nothing written) once closed."""
        fields = {key: row.get(key) for key in MANIFEST_KEYS}
        fields.update({key: row[key] for key in MANIFEST_EXTRA_KEYS if key in row})
        line = json.dumps(fields, ensure_ascii=False)
        with self._lock:
            if self._closed:
                return False
            self._handle.write(line + "\n")
            self._handle.flush()
            key = row_key(fields)
            self.rows.pop(key, None)  # the latest goes last
            self.rows[key] = fields
        return True

    def close(self, keep: Callable[[dict[str, Any]], bool] | None = None) -> None:
        """Stop taking rows and rewrite the file with the latest row per key (those ``keep``
        accepts), atomically: a reader sees the old file or the new, never a mix."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._handle.close()
            rows = [row for row in self.rows.values() if keep is None or keep(row)]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        write_atomic(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def abandon(self) -> None:
        """Stop taking rows and close the file as it is (the next run compacts it)."""
        with self._lock:
            self._closed = True
            self._handle.close()


def _read_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The latest row per key, read once; a last line cut short by a crash is dropped from the
    file too, so that appended rows start on a line of their own."""
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return rows
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(cut)
        data = data[:cut]
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            key = row_key(row)
            rows.pop(key, None)
            rows[key] = row
    return rows


def holds_manifest(folder: Path) -> bool:
    """Whether ``folder`` is one of our output folders: it holds our lock file, or a regular
    ``results.jsonl`` whose first line is one of our rows."""
    path = folder / MANIFEST
    if os.path.lexists(folder / LOCK_FILE):
        return True
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline(1 << 16)
        row = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(row, dict) and {"image", "status", "outputs"} <= row.keys()


def remove_partial_files(folder: Path) -> int:
    """Remove the temporary files of writes that never finished under ``folder`` (those of
    :func:`atomic_path`: ``.NAME.XXXX.part``), e.g. of killed writer processes. Only safe while
    holding the folder's lock. Returns how many."""
    removed = 0
    for current, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and name.endswith(".part"):
                Path(current, name).unlink(missing_ok=True)
                removed += 1
    return removed
