"""The manifest ``results.jsonl``: one JSON row per picture, appended to as a run goes and
compacted at its end; and, for a run split over many processes, one part per process, merged
into it at the end.

Each process of a sharded run appends only to its own part (``results.part.000004.3-of-8.jsonl``:
the run's sequence number, then the shard), so no two processes write one file. Parts are read
in order of their sequence, which each new part takes above every part present, so later runs
win over earlier ones without trusting clocks. A process's part holds the rows it wrote, and at
its end a dropped row (:meth:`~.rows.Row.dropped`) for each earlier row of its images that no
longer holds; :func:`merge_parts` folds them all into ``results.jsonl``, which a lone run also
does first.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .confine import is_inside, open_no_follow, refuse_link
from .lock import shard_locks
from .outputs import MANIFEST, remove_partial_files, write_atomic
from .rows import DROPPED, Row

if TYPE_CHECKING:
    from .shard import Shard

PART = re.compile(r"results\.part\.(\d+)\.(\d+)-of-(\d+)\.jsonl")


class Manifest:
    """A run's manifest: ``rows`` holds the latest row per key (:attr:`~.rows.Row.key`) of
    earlier runs and this one; rows are appended as they come (a crash loses at most the line
    being written) and :meth:`close` compacts the file atomically.

    A lone run (``shard`` None) first merges any parts into ``results.jsonl``, then appends to
    it. A shard's process reads ``results.jsonl`` and every part (its ``rows`` only those that
    ``mine`` accepts) and appends to a part of its own. Hold the folder's lock
    (:func:`~saliency.files.lock.lock_output`) first.
    """

    def __init__(
        self,
        folder: Path,
        shard: Shard | None = None,
        mine: Callable[[Row], bool] | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self._lock = threading.Lock()
        self._closed = False
        self._written: dict[str, Row] = {}
        self.kept: list[Row] | None = None  # a lone run's rows, once closed
        if shard is None:
            self.path = folder / MANIFEST
            self.rows = {row.key: row for row in merge_parts(folder).rows}  # read once
        else:
            parts = list_parts(folder)
            sequence = max((number for number, _ in parts), default=0) + 1
            self.path = folder / f"results.part.{sequence:06d}.{shard.name}.jsonl"
            rows = fold([folder / MANIFEST, *(path for _, path in parts)])
            self.rows = {k: r for k, r in rows.items() if mine is None or mine(r)}
        # held open for the run, closed by close(); a link there is refused, not written through
        fd = open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._handle: IO[str] = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, row: Row) -> bool:
        """Append one row, every key of it. False (nothing written) once closed."""
        line = row_line(row)
        with self._lock:
            if self._closed:
                return False
            self._handle.write(line + "\n")
            self._handle.flush()
            key = row.key
            self.rows.pop(key, None)  # the latest goes last
            self.rows[key] = row
            self._written[key] = row
        return True

    def close(self, keep: Callable[[Row], bool] | None = None) -> None:
        """Stop taking rows and rewrite the file, atomically (a reader sees the old file or the
        new, never a mix): a lone run's with the latest row per key that ``keep`` accepts; a
        shard's with the rows it wrote that ``keep`` accepts and a dropped row for each other."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._handle.close()
            if self.shard is None:
                rows = [row for row in self.rows.values() if keep is None or keep(row)]
                self.kept = rows
            else:
                rows = [r for k, r in self.rows.items() if k in self._written and _kept(keep, r)]
                rows += [Row.dropped(r) for r in self.rows.values() if not _kept(keep, r)]
        if self.shard is not None and not rows:
            self.path.unlink(missing_ok=True)
            return
        write_rows(self.path, rows)

    def abandon(self) -> None:
        """Stop taking rows and close the file as it is (the next run compacts it)."""
        with self._lock:
            self._closed = True
            self._handle.close()


def _kept(keep: Callable[[Row], bool] | None, row: Row) -> bool:
    return keep is None or keep(row)


def row_line(row: Row) -> str:
    """A row as one line of JSON (see :func:`json_text`)."""
    return json_text(row.to_dict())


def json_text(data: Any, **options: Any) -> str:
    """``data`` as JSON that UTF-8 can hold: readable where it can be, and where a name is not
    valid UTF-8 (a file name's stray bytes, held as surrogates) with \\u escapes throughout,
    which read back exactly."""
    text = json.dumps(data, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, **options)
    return text


def write_rows(path: Path, rows: Iterable[Row]) -> None:
    text = "".join(row_line(row) + "\n" for row in rows)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_rows(path: Path, repair: bool = False) -> dict[str, Row]:
    """The latest row per key of one file, read once. A last line cut short (by a crash, or
    still being written by another process) is skipped; with ``repair`` it is cut off the file
    too, so that appended rows start on a line of their own."""
    rows: dict[str, Row] = {}
    apply_rows(rows, path, repair)
    return {k: r for k, r in rows.items() if r.status != DROPPED}


def apply_rows(rows: dict[str, Row], path: Path, repair: bool = False) -> None:
    """Update ``rows`` (by key, latest last) with the rows of ``path``, dropped rows included.
    A manifest that is a link is refused (:class:`~saliency.errors.UnsafePathError`): it is
    never read, repaired or replaced through."""
    refuse_link(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        if repair:
            with open(path, "r+b") as handle:
                handle.truncate(cut)
        data = data[:cut]
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            read = Row.from_dict(row)
            rows.pop(read.key, None)
            rows[read.key] = read


def fold(paths: Iterable[Path]) -> dict[str, Row]:
    """The latest row per key over ``paths`` read in order, dropped rows removing earlier ones."""
    rows: dict[str, Row] = {}
    for path in paths:
        apply_rows(rows, path)
    return {k: r for k, r in rows.items() if r.status != DROPPED}


def list_parts(folder: Path) -> list[tuple[int, Path]]:
    """The manifest parts in ``folder`` with their sequence numbers, in the order they apply."""
    parts = []
    for path in folder.glob("results.part.*.jsonl"):
        match = PART.fullmatch(path.name)
        if match is not None:
            parts.append((int(match[1]), int(match[2]), path))
    return [(number, path) for number, _, path in sorted(parts)]


def manifest_files(folder: Path) -> list[Path]:
    """``results.jsonl`` then every part: the files whose rows make a folder's manifest, in the
    order they apply (see :func:`fold`)."""
    return [folder / MANIFEST, *(path for _, path in list_parts(folder))]


@dataclass(frozen=True)
class Merged:
    """What :func:`merge_parts` did: parts folded in, and the manifest's rows after."""

    parts: int
    rows: list[Row]

    @property
    def images(self) -> int:
        return len({row.image for row in self.rows})

    @property
    def pictures(self) -> int:
        return sum(1 for row in self.rows if row.is_ok)

    @property
    def failed(self) -> int:
        return len({row.image for row in self.rows if not row.is_ok})


def merge_parts(folder: Path) -> Merged:
    """Fold every part into ``results.jsonl`` (atomically) and remove the parts, the shards'
    lock files and partial files that killed shards left. Only while holding the folder
    exclusively (a lone run's lock)."""
    main, *parts = manifest_files(folder)
    if parts:
        rows = fold([main, *parts])
        write_rows(main, rows.values())
        for path in parts:
            path.unlink(missing_ok=True)
        remove_partial_files(folder)  # a walk of the whole tree: only after a sharded run
    else:
        rows = read_rows(main, repair=True)
    for path, _, _ in shard_locks(folder):
        path.unlink(missing_ok=True)
    remove_unnamed_containers(folder, rows.values())
    return Merged(len(parts), list(rows.values()))


CONTAINER = re.compile(r"[0-9a-f]{12}-\d{5}\.safetensors")


def remove_unnamed_containers(folder: Path, rows: Iterable[Row]) -> int:
    """Remove the containers of raw maps (``maps/*.safetensors``, see :mod:`.raw_maps`) that no
    row names any more: all their maps were redone. Only while holding the folder alone."""
    named = {name for row in rows for name in row.outputs}
    removed = 0
    if not is_inside(folder, "maps", follow=True):  # a link leading out: not ours to clean
        return 0
    for path in (folder / "maps").glob("*.safetensors"):
        if CONTAINER.fullmatch(path.name) and f"maps/{path.name}" not in named:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
