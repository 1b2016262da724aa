"""Explaining folders of images: a pipelined run that writes pictures and a manifest.

Reading, decoding and resampling run in worker processes (or reader threads), the model's passes
in a run thread (one forward pass per batch serves every method and target), drawing, encoding
and writing in the worker processes (or writer threads); on a CUDA model, decoding and drawing
move to the device (:mod:`.resident`). Every queue is bounded, so memory stays flat however many
images there are. The caller's thread only
watches: when ``should_stop`` turns true it gives the run ``grace`` seconds to finish what is
written, then walks away from any thread still stuck (in a read, the model or a write), removes
partial files and closes the manifest. So a run always ends promptly, and never half-written.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from ..engine.hooks import RuleReport
from ..engine.passes import Stopped
from ..engine.registry import get_method
from ..files.inputs import InputFile
from ..files.lock import lock_output
from ..files.manifest import Manifest, Row, remove_unnamed_containers, row_key
from ..files.outputs import Cancelled, PartialFiles, remove_partial_files
from ..files.raw_maps import RawStore
from ..files.sources import SourceId
from ..models.loading import LoadedModel
from ..parallel.shards import Shard, select
from .drawing import draw_and_write
from .fingerprint import model_identity, settings_fingerprint
from .options import JobOptions
from .resident import CPU_DECODED
from .resume import Attempt, Plan, keep_row, plan_run
from .stages import (
    Drawing,
    ImageOutcome,
    decoded_batches,
    drawing,
    error_outcome,
    error_row,
    explain_group,
    result_of,
    same_shape,
)
from .workers import Workers, kill_processes, process_pool


def run_job(
    loaded: LoadedModel,
    files: list[InputFile],
    out_dir: Path,
    options: JobOptions,
    on_image: Callable[[ImageOutcome], None] = lambda outcome: None,
    should_stop: Callable[[], bool] = lambda: False,
    readers: int = 2,
    writers: int = 0,
    missing: Sequence[str] = (),
    grace: float = 3.0,
    shard: Shard | None = None,
) -> dict[str, RuleReport]:
    """Explain ``files`` and write pictures and manifest rows under ``out_dir``.

    Calls ``on_image`` once per image: first for those with nothing to do or refused, then for
    the rest in input order. Pictures an earlier run made from the same
    input content with the same settings are kept; the rest are redone (all of them with
    ``options.overwrite``), and rows and pictures that no longer hold are removed (see
    :mod:`.resume`). ``missing`` paths get an error row each. Holds ``out_dir``'s lock for the
    run (:class:`~saliency.OutputBusyError` if another run has it). When ``should_stop()`` turns
    true, returns within about ``grace`` seconds with everything finished so far written.
    ``writers`` processes draw, encode and write (0, the default: threads of this process;
    :func:`default_writers` suits a machine of its own). Like all multiprocessing, writer
    processes import the main module: guard a script's work with ``if __name__ == "__main__"``.
    With ``shard``, ``files`` are the whole run's inputs and this process explains its share
    (:func:`~saliency.parallel.shards.select`) beside the other shards' processes, writing its
    own manifest part (see :mod:`~saliency.files.manifest`); ``missing`` go to shard 0.
    Returns, per method, where the rule was applied in the first batch (for one coverage
    message per run).
    """
    methods = tuple(get_method(m).name for m in options.methods)
    resident = options.resident
    if resident is None:
        resident = loaded.device.type == "cuda"
    options = replace(options, methods=methods, resident=resident)
    mine = None
    if shard is not None:
        own = select(files, shard)
        mine = _rows_of(own, files, options, shard)
        files, missing = own, missing if shard.first else ()
    with lock_output(out_dir, shard):
        manifest = Manifest(out_dir, shard, mine)
        identity = model_identity(loaded)
        fingerprints = {m: settings_fingerprint(identity, m, options) for m in methods}
        plan = plan_run(files, options, manifest.rows, fingerprints, out_dir)
        store = RawStore(out_dir) if options.contained else None
        run = _Run(loaded, out_dir, options, fingerprints, plan, manifest, on_image, store)
        finished = False
        try:
            for path in missing:
                run.record(ImageOutcome(_named(path), [error_row(path, loaded.name, _GONE)]))
            done, refused = set(plan.done), dict(plan.refused)
            for file in files:
                if file in done:
                    on_image(ImageOutcome(file, done=True))
                elif file in refused:
                    run.record(error_outcome(loaded, file, refused[file]))
            run.start(readers, writers)
            run.watch(should_stop, grace)
            finished = True
        finally:
            if store is not None:
                store.close()  # the maps of every row written (and perhaps a few more)
            run.partials.discard_all()
            if run.pool is not None:
                kill_processes(run.pool)  # only still running if the run was left
                remove_partial_files(out_dir, None if shard is None else run.outputs())
            if finished:
                manifest.close(keep=run.keep)
                run.remove_dropped()
                if manifest.kept is not None and options.contained:
                    remove_unnamed_containers(out_dir, manifest.kept)
            else:  # a second signal, or an error: close as is; the next run compacts
                manifest.abandon()
    return run.reports


_GONE = "no such file or folder"


def _rows_of(
    own: list[InputFile], files: list[InputFile], options: JobOptions, shard: Shard
) -> Callable[[Row], bool]:
    """Which manifest rows a shard answers for: those of its images (by picture, or by image
    for other methods' and error rows); shard 0 also those of no input of the run."""

    def keys(chosen: list[InputFile]) -> set[str]:
        suffixes = options.target.suffixes()
        return {
            row_key({"outputs": options.outputs(f.base.as_posix(), method, suffix)})
            for f in chosen
            for method in options.methods
            for suffix in suffixes
        }

    own_keys, own_images = keys(own), {f.shown for f in own}
    if not shard.first:
        return lambda row: row_key(row) in own_keys or row.get("image") in own_images
    all_keys, all_images = keys(files), {f.shown for f in files}

    def mine(row: Row) -> bool:
        key, image = row_key(row), row.get("image")
        if key in own_keys or image in own_images:
            return True
        return key not in all_keys and image not in all_images

    return mine


def _named(path: str) -> InputFile:
    return InputFile(Path(path), path, Path(path))


@dataclass
class _Run:
    """One run's state, shared by the watching thread and the run thread."""

    loaded: LoadedModel
    out_dir: Path
    options: JobOptions
    fingerprints: dict[str, str]
    plan: Plan
    manifest: Manifest
    on_image: Callable[[ImageOutcome], None]
    raw_store: RawStore | None = None
    reports: dict[str, RuleReport] = field(default_factory=dict)
    partials: PartialFiles = field(default_factory=PartialFiles)
    stop: threading.Event = field(default_factory=threading.Event)
    left: threading.Event = field(default_factory=threading.Event)  # the watcher walked away
    written: set[str] = field(default_factory=set)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    named: set[str] = field(default_factory=set)  # files that kept rows name
    pool: ProcessPoolExecutor | None = None
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self, readers: int, writers: int) -> None:
        if not self.plan.todo:
            return
        self._thread = threading.Thread(
            target=self._guarded, args=(readers, writers), name="saliency-run", daemon=True
        )
        self._thread.start()

    def watch(self, should_stop: Callable[[], bool], grace: float) -> None:
        """Wait for the run thread; on a stop request, give it ``grace`` seconds, then leave."""
        deadline = None
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.05)
            if deadline is None and should_stop():
                self.stop.set()
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                self.left.set()
                return
        if self._error is not None:
            raise self._error

    def record(self, outcome: ImageOutcome) -> None:
        """Write an image's rows and tell the caller, unless the watcher has left."""
        if self.left.is_set():
            return
        for row in outcome.rows:
            if self.manifest.write(row):
                self.written.add(row_key(row))
        file = outcome.input
        entries = self.plan.todo.get(file)
        if entries is not None:  # an image this run set out to redo
            base = file.base.as_posix()
            keys = {row_key({"outputs": self.options.outputs(base, *e)}) for e in entries}
            source = None if outcome.error or not outcome.rows else outcome.rows[0]["source"]
            self.attempts[file.shown] = Attempt(keys, SourceId.from_dict(source))
        self.on_image(outcome)

    def keep(self, row: dict[str, Any]) -> bool:
        """Whether the manifest keeps ``row``: it still holds (see :func:`.resume.keep_row`)
        and, with ``overwrite`` (the manifest starts afresh), this run wrote it. Notes the rows
        no longer true to their input (their files go too) and the files of the others (rows
        dropped only because of ``overwrite`` leave their files)."""
        if not keep_row(row, self.written, self.attempts):
            self.dropped.append(row)
            return False
        self.named.update(row.get("outputs") or [])
        return not self.options.overwrite or row_key(row) in self.written

    def outputs(self) -> set[str]:
        """The files of every picture this run set out to make."""
        return {
            name
            for file, entries in self.plan.todo.items()
            for entry in entries
            for name in self.options.outputs(file.base.as_posix(), *entry)
        }

    def remove_dropped(self) -> None:
        """Delete the pictures of rows that no longer hold (never a file another row still
        names, nor one of a row that was not ``ok``: such a file may not be ours)."""
        for row in self.dropped:
            if row.get("status") == "ok":
                for name in row.get("outputs") or []:
                    if name not in self.named:
                        (self.out_dir / name).unlink(missing_ok=True)

    def _guarded(self, readers: int, writers: int) -> None:
        try:
            self._pipeline(readers, writers)
        except (Stopped, Cancelled):
            pass
        except BaseException as exc:  # handed to the watching thread
            self._error = exc

    def _pipeline(self, readers: int, writers: int) -> None:
        loaded, options = self.loaded, replace(self.options, methods=self.plan.methods)
        todo = list(self.plan.todo)
        if writers > 0:
            self.pool = process_pool(writers)
            pool = self.pool

            def submit(work: Drawing) -> Future[list[bool]]:
                return pool.submit(draw_and_write, work.task)
        else:  # drawing and encoding in threads (Pillow releases the GIL), one per spare core
            threads = Workers(max(2, min(8, (os.cpu_count() or 2) // 2)), "saliency-write")

            def submit(work: Drawing) -> Future[list[bool]]:
                return threads.submit(draw_and_write, work.task, self.partials)

        pending: deque[tuple[InputFile, Drawing | None, Future[list[bool]] | ImageOutcome]] = (
            deque()
        )
        # worker processes read and decode too; reader threads only without them, or to read
        # bytes for the resident path, which decodes on the device
        read_pool: Workers | None = None
        reads: Workers | ProcessPoolExecutor
        if self.pool is not None and not options.resident:
            reads = self.pool
        else:
            reads = read_pool = Workers(readers, "saliency-read")
        limit = max(2 * options.batch_size, 4)
        warned = False  # that some photo was not decoded on the device

        def settle(block_until: int) -> None:
            """Record finished images in order: all beyond ``block_until`` pending (waiting for
            them), and any already finished at the front (so rows follow pictures closely)."""
            while pending and (len(pending) > block_until or _finished(pending[0][2])):
                file, work, job = pending.popleft()
                if isinstance(job, ImageOutcome):
                    self.record(job)
                    continue
                if job.cancelled() or isinstance(job.exception(), _STOPPED_WRITES):
                    continue  # stopping: this image's writes were refused, nothing kept
                assert work is not None
                self.record(result_of(loaded, file, partial(_outcome, work, job)))

        try:
            decoded = decoded_batches(reads, todo, loaded, options, limit, self.stop)
            for batch in decoded:
                for item in batch:
                    if item.error is not None:
                        outcome = error_outcome(loaded, item.input, item.error)
                        pending.append((item.input, None, outcome))
                for group in same_shape(i for i in batch if i.error is None):
                    try:
                        explained = explain_group(
                            loaded, group, options, self.reports, self.stop.is_set
                        )
                    except Stopped:  # asked to stop mid-batch: this batch is dropped
                        break
                    except Exception as exc:  # the model failed on this group: report, go on
                        reason = f"model failed: {type(exc).__name__}: {exc}"
                        for item in group:
                            outcome = error_outcome(loaded, item.input, reason)
                            pending.append((item.input, None, outcome))
                        continue
                    for done in explained:
                        file = done.decoded.input
                        work = drawing(
                            loaded, done, self.out_dir, options, self.plan.todo[file],
                            self.fingerprints, self.raw_store,
                        )  # fmt: skip
                        if done.decoded.cpu_decoded and not warned:
                            work.notes.append(CPU_DECODED)
                            warned = True
                        pending.append((file, work, submit(work)))
                settle(limit)
                if self.stop.is_set():
                    break
        except Stopped:
            pass
        finally:
            if read_pool is not None:
                read_pool.cancel_pending()
            if self.stop.is_set():
                for _, _, job in pending:
                    if isinstance(job, Future):
                        job.cancel()
            settle(0)
            if read_pool is not None:
                read_pool.close()
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=self.stop.is_set())
            else:
                threads.close()


_STOPPED_WRITES = (Cancelled, BrokenProcessPool)


def default_writers() -> int:
    """Writer processes by default: the cores the model's threads leave, at least one."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - torch.get_num_threads())


def _outcome(work: Drawing, job: Future[list[bool]]) -> ImageOutcome:
    return work.outcome(job.result())


def _finished(job: Future[list[bool]] | ImageOutcome) -> bool:
    return not isinstance(job, Future) or job.done()
