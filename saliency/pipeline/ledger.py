"""A folder run's records: what is done, kept, stale or dropped, and what is left on disk.

The ledger opens the manifest (a shard's view of it), plans the run from its rows
(:func:`.resume.plan_run`), writes each image's rows as they come, and at the end keeps the rows
that still hold, removes the pictures and containers of those that do not, and, if the run was
left mid-way, closes the manifest as it is for the next run to compact. It never explains or draws
anything: :mod:`.executor` does, and hands it outcomes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ..files.confine import Confinement
from ..files.inputs import InputFile
from ..files.manifest import Manifest, remove_unnamed_containers
from ..files.outputs import remove_partial_files
from ..files.raw_maps import RawStore
from ..files.rows import Row, row_key
from ..files.shard import Shard
from ..files.sources import SourceId
from ..tasks.plan import FOUND
from .options import JobOptions
from .resume import Attempt, Plan, keep_row, plan_run
from .stages import ImageOutcome, error_outcome

GONE = "no such file or folder"


class Ledger:
    """The records of one run over ``files`` in ``out_dir`` (hold the folder's lock first)."""

    def __init__(
        self,
        out_dir: Path,
        files: list[InputFile],
        options: JobOptions,
        fingerprints: dict[str, str],
        shard: Shard | None = None,
        mine: Callable[[Row], bool] | None = None,
    ) -> None:
        self.out_dir, self.options = out_dir, options
        self.manifest = Manifest(out_dir, shard, mine)
        self.plan: Plan = plan_run(files, options, self.manifest.rows, fingerprints, out_dir)
        self.raw_store = RawStore(out_dir) if options.contained else None
        self.left = threading.Event()  # the run was left: rows that come later are not taken
        self._written: set[str] = set()
        self._attempts: dict[str, Attempt] = {}
        self._dropped: list[Row] = []
        self._named: set[str] = set()  # files that kept rows name

    def record(self, outcome: ImageOutcome) -> bool:
        """Write an image's rows, unless the run was left; whether they were taken."""
        if self.left.is_set():
            return False
        for row in outcome.rows:
            if self.manifest.write(row):
                self._written.add(row.key)
        file = outcome.input
        entries = self.plan.todo.get(file)
        if entries is not None:  # an image this run set out to redo
            base = file.base.as_posix()
            keys = {
                row_key(file.shown, self.options.outputs(base, *e))
                for e in entries
                if e[1] != FOUND
            }
            found = frozenset(method for method, suffix in entries if suffix == FOUND)
            source = None if outcome.error or not outcome.rows else outcome.rows[0].source
            self._attempts[file.shown] = Attempt(keys, SourceId.from_dict(source), found)
        return True

    def known(
        self, model: str, files: list[InputFile], missing: Sequence[str]
    ) -> list[ImageOutcome]:
        """The outcomes known before any work: paths that are missing, then in input order the
        images with nothing left to do and those refused (a stranger's file at an output)."""
        outcomes = [error_outcome(model, _named(path), GONE) for path in missing]
        done, refused = set(self.plan.done), dict(self.plan.refused)
        for file in files:
            if file in done:
                outcomes.append(ImageOutcome(file, done=True))
            elif file in refused:
                outcomes.append(error_outcome(model, file, refused[file]))
        return outcomes

    def planned_outputs(self) -> set[str]:
        """The files of every picture this run set out to make."""
        return {
            name
            for file, entries in self.plan.todo.items()
            for entry in entries
            if entry[1] != FOUND  # named once found: see remove_partial_files
            for name in self.options.outputs(file.base.as_posix(), *entry)
        }

    def found_stems(self) -> set[str]:
        """The name stems of the pictures this run set out to make of found targets."""
        return {
            self.options.stem(file.base.as_posix(), method, "")
            for file, entries in self.plan.todo.items()
            for method, suffix in entries
            if suffix == FOUND
        }

    def close(self, finished: bool, writers_killed: bool) -> None:
        """End the run's records: a run that ended (done, stopped, or left by the watcher)
        keeps the rows that still hold and removes the files of the others; one ended by an
        error or a second signal closes the manifest as it is. Partial files that killed
        writer processes left are removed either way."""
        if self.raw_store is not None:
            self.raw_store.close()  # the maps of every row written (and perhaps a few more)
        if writers_killed:
            shard = self.manifest.shard
            if shard is None:
                remove_partial_files(self.out_dir)
            else:
                remove_partial_files(self.out_dir, self.planned_outputs(), self.found_stems())
        if not finished:  # a second signal, or an error: the next run compacts
            self.manifest.abandon()
            return
        self.manifest.close(keep=self._keep)
        self._remove_dropped()
        if self.manifest.kept is not None and self.options.contained:
            remove_unnamed_containers(self.out_dir, self.manifest.kept)

    def _keep(self, row: Row) -> bool:
        """Whether the manifest keeps ``row``: it still holds (see :func:`.resume.keep_row`)
        and, with ``overwrite`` (the manifest starts afresh), this run wrote it. Notes the rows
        no longer true to their input (their files go too) and the files of the others (rows
        dropped only because of ``overwrite`` leave their files)."""
        if not keep_row(row, self._written, self._attempts):
            self._dropped.append(row)
            return False
        self._named.update(row.outputs)
        return not self.options.overwrite or row.key in self._written

    def _remove_dropped(self) -> None:
        """Delete the pictures of rows that no longer hold (never a file another row still
        names, nor one of a row that was not ``ok``: such a file may not be ours; nor what a
        row names outside the folder: see :mod:`~saliency.files.confine`)."""
        gate = Confinement(self.out_dir)
        for row in self._dropped:
            if row.is_ok:
                for name in row.outputs:
                    if name not in self._named and gate.is_inside(name):
                        (self.out_dir / name).unlink(missing_ok=True)


def shard_rows(
    own: list[InputFile], files: list[InputFile], options: JobOptions, shard: Shard
) -> Callable[[Row], bool]:
    """Which manifest rows a shard answers for: those of its images (by picture, or by image
    for other methods' and error rows); shard 0 also those of no input of the run."""

    def keys(chosen: list[InputFile]) -> set[str]:
        suffixes = [s for s in options.target.suffixes() if s != FOUND]  # by image below
        return {
            row_key(f.shown, options.outputs(f.base.as_posix(), method, suffix))
            for f in chosen
            for method in options.methods
            for suffix in suffixes
        }

    own_keys, own_images = keys(own), {f.shown for f in own}
    if not shard.first:
        return lambda row: row.key in own_keys or row.image in own_images
    all_keys, all_images = keys(files), {f.shown for f in files}

    def mine(row: Row) -> bool:
        if row.key in own_keys or row.image in own_images:
            return True
        return row.key not in all_keys and row.image not in all_images

    return mine


def _named(path: str) -> InputFile:
    return InputFile(Path(path), path, Path(path))
