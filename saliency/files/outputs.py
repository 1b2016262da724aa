"""Writing results safely: atomic files and an append-only JSON-lines manifest."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

MANIFEST = "results.jsonl"
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


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder, renamed to ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; outputs are not
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` and move the result into place; no half-written file remains."""
    with atomic_path(path) as tmp:
        write(tmp)


class Manifest:
    """``results.jsonl``: one complete JSON object per line, flushed as each is written."""

    def __init__(self, folder: Path, fresh: bool = False) -> None:
        self.path = folder / MANIFEST
        self.done: set[str] = set() if fresh else _done_outputs(self.path)
        folder.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        # held open for the run, closed by close()
        self._handle: IO[str] = open(self.path, "w" if fresh else "a", encoding="utf-8")  # noqa: SIM115

    def _repair_tail(self) -> None:
        """Drop a last line cut short by a crash, so every line stays one JSON object."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as handle:
                handle.truncate(cut)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row: every key of :data:`MANIFEST_KEYS`, then those of
        :data:`MANIFEST_EXTRA_KEYS` that the row has."""
        fields = {key: row.get(key) for key in MANIFEST_KEYS}
        fields.update({key: row[key] for key in MANIFEST_EXTRA_KEYS if key in row})
        line = json.dumps(fields, ensure_ascii=False)
        self._handle.write(line + "\n")
        self._handle.flush()
        if row.get("status") in ("ok", "skipped"):
            self.done.update(row.get("outputs") or [])

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def _done_outputs(path: Path) -> set[str]:
    done: set[str] = set()
    if not path.exists():
        return done
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and row.get("status") in ("ok", "skipped"):
                done.update(row.get("outputs") or [])
    return done
