"""A folder run's execution: reading and decoding, the model's passes, drawing and writing, in
threads and processes, with a watcher that can walk away.

Reading, decoding and resampling run in worker processes (or reader threads), the model's passes
in a run thread (one forward pass per batch serves every method and target), drawing, encoding
and writing in the worker processes (or writer threads); on a CUDA model, decoding and drawing
move to the device (:mod:`.resident`). Every queue is bounded, so memory stays flat however many
images there are. The caller's thread only watches: when ``should_stop`` turns true it gives the
run ``grace`` seconds to finish what is written, records the images whose pictures are written
by then, and walks away from any thread still stuck (in a read, the model or a write). Each
image's outcome goes to ``record``, in input order; the records themselves are the ledger's
(:mod:`.ledger`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path

from ..engine.passes import Stopped
from ..engine.report import RuleReport
from ..files.inputs import InputFile
from ..files.outputs import Cancelled, PartialFiles
from ..files.raw_maps import RawStore
from ..models.loading import LoadedModel
from .drawing import draw_and_write
from .options import JobOptions
from .prepared import Drawing, drawing
from .resident import REDONE, why
from .resume import Entry
from .stages import (
    Decoded,
    Explained,
    ImageOutcome,
    decoded_batches,
    error_outcome,
    explain_group,
    result_of,
    same_shape,
)
from .workers import Workers, kill_processes, process_pool

Job = Future[list[bool]] | ImageOutcome  # a drawing on its way, or an outcome known already
_STOPPED_WRITES = (Cancelled, BrokenProcessPool)


class Executor:
    """Explains ``todo`` (per image, the pictures to make) and hands each outcome to ``record``.

    :meth:`run` returns when every image is recorded, or ``grace`` seconds after
    ``should_stop()`` turned true, whichever comes first; ``reports`` then holds, per method,
    where its rule was applied in the first batch.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        out_dir: Path,
        options: JobOptions,
        todo: dict[InputFile, list[Entry]],
        fingerprints: dict[str, str],
        record: Callable[[ImageOutcome], None],
        raw_store: RawStore | None = None,
    ) -> None:
        self.loaded, self.out_dir, self.options = loaded, out_dir, options
        self.todo, self.fingerprints, self.raw_store = todo, fingerprints, raw_store
        self.record = record
        self.reports: dict[str, RuleReport] = {}
        self.partials = PartialFiles()
        self.stop = threading.Event()
        self.pool: ProcessPoolExecutor | None = None
        self._threads: Workers | None = None
        self._pending: deque[tuple[InputFile, Drawing | None, Job]] = deque()
        self._records = threading.Lock()  # the run thread's, or the watcher's once it leaves
        self._error: BaseException | None = None
        self._warned: set[str] = set()  # notes said: why some photo was done on the CPU

    def run(
        self, readers: int, writers: int, should_stop: Callable[[], bool], grace: float
    ) -> bool:
        """Run and watch; False if the watcher walked away from a run still going."""
        if not self.todo:
            return True
        thread = threading.Thread(
            target=self._guarded, args=(readers, writers), name="saliency-run", daemon=True
        )
        thread.start()
        deadline = None
        while thread.is_alive():
            thread.join(0.05)
            if deadline is None and should_stop():
                self.stop.set()
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                self._leave()
                return False
        if self._error is not None:
            raise self._error
        return True

    def _leave(self) -> None:
        """Record the images at the front whose pictures are written (a run thread stuck in
        the model would have recorded them at its next batch); what the run records later, the
        ledger no longer takes (see :func:`.job.run_job`)."""
        if not self._records.acquire(timeout=1.0):  # the run thread waits on a stuck write
            return
        try:
            self._record_finished(math.inf)
        finally:
            self._records.release()

    def abandon(self) -> bool:
        """Drop what is unfinished: partial files of writer threads, writer processes still
        running (then True: their partial files are for the caller to remove)."""
        self.partials.discard_all()
        if self.pool is None:
            return False
        kill_processes(self.pool)  # only still running if the run was left
        return True

    def _guarded(self, readers: int, writers: int) -> None:
        try:
            self._pipeline(readers, writers)
        except (Stopped, Cancelled):
            pass
        except BaseException as exc:  # handed to the watching thread
            self._error = exc

    def _pipeline(self, readers: int, writers: int) -> None:
        """Decode batches, explain each group of one shape, hand its drawings to the writers,
        and record finished images in order as they come."""
        if writers > 0:
            self.pool = process_pool(writers)
        else:  # drawing and encoding in threads (Pillow releases the GIL), one per spare core
            self._threads = Workers(max(2, min(8, (os.cpu_count() or 2) // 2)), "saliency-write")
        # worker processes read and decode too; reader threads only without them, or to read
        # bytes for the resident path, which decodes on the device
        read_pool = None
        if self.pool is not None and not self.options.resident:
            reads: Workers | ProcessPoolExecutor = self.pool
        else:
            reads = read_pool = Workers(readers, "saliency-read")
        limit = max(2 * self.options.batch_size, 4)
        try:
            files = list(self.todo)
            for batch in decoded_batches(reads, files, self.loaded, self.options, limit, self.stop):
                self._explain(batch)
                self._settle(limit)
                if self.stop.is_set():
                    break
        except Stopped:
            pass
        finally:
            if read_pool is not None:
                read_pool.cancel_pending()
            self._finish(read_pool)

    def _explain(self, batch: list[Decoded]) -> None:
        """Queue each decoded image's drawing, or its error; raises :class:`Stopped` when
        asked to stop mid-batch (the batch is dropped)."""
        for item in batch:
            if item.error is not None:
                self._known(item.input, item.error)
        for group in same_shape(batch):
            for item, done in self._explained(group):
                if isinstance(done, str):
                    self._known(item.input, done)
                    continue
                file = item.input
                try:
                    work = self._drawing(done)
                except Exception as exc:  # drawing it failed: this input's fault alone
                    self._known(file, f"cannot draw: {why(exc)}")
                    continue
                note = item.cpu_note
                if note is not None and note not in self._warned:
                    work.notes.append(note)
                    self._warned.add(note)
                self._queue(file, work, self._submit(work))

    def _drawing(self, done: Explained) -> Drawing:
        """The image's pictures prepared for a writer; where the device fails to draw them, drawn
        on the CPU path instead (the writer re-reads the photo), with a note saying why."""
        wanted = self.todo[done.decoded.input]
        make = partial(drawing, self.loaded, done, self.out_dir, self.options, wanted,
                       self.fingerprints, self.raw_store)  # fmt: skip
        if done.decoded.photo is None:
            return make()
        try:
            return make()
        except Exception as exc:
            done.decoded.photo = None
            done.decoded.cpu_note = REDONE.format(why=why(exc))
            return make()  # a raw map the first try stored is stored again, under its name

    def _explained(self, group: list[Decoded]) -> list[tuple[Decoded, Explained | str]]:
        """Each input of ``group`` (one shape) explained, or why the model failed on it: a
        group the model fails on is redone one input at a time, so that the fault stays with
        the input it belongs to."""
        try:
            found = explain_group(self.loaded, group, self.options, self.reports, self.stop.is_set)
        except Stopped:
            raise
        except Exception as exc:
            if len(group) > 1:
                return [pair for item in group for pair in self._explained([item])]
            return [(group[0], f"model failed: {type(exc).__name__}: {exc}")]
        return list(zip(group, found, strict=True))

    def _known(self, file: InputFile, reason: str) -> None:
        self._queue(file, None, error_outcome(self.loaded.name, file, reason))

    def _queue(self, file: InputFile, work: Drawing | None, job: Job) -> None:
        with self._records:
            self._pending.append((file, work, job))

    def _submit(self, work: Drawing) -> Future[list[bool]]:
        if self.pool is not None:
            return self.pool.submit(draw_and_write, work.task)
        assert self._threads is not None
        return self._threads.submit(draw_and_write, work.task, self.partials)

    def _settle(self, block_until: int) -> None:
        """Record finished images in order: all beyond ``block_until`` pending (waiting for
        them), and any already finished at the front (so rows follow pictures closely)."""
        with self._records:
            self._record_finished(block_until)

    def _record_finished(self, block_until: float) -> None:
        """:meth:`_settle`'s work, the lock held."""
        pending = self._pending
        while pending and (len(pending) > block_until or _finished(pending[0][2])):
            file, work, job = pending.popleft()
            if isinstance(job, ImageOutcome):
                self.record(job)
                continue
            if job.cancelled() or isinstance(job.exception(), _STOPPED_WRITES):
                continue  # stopping: this image's writes were refused, nothing kept
            assert work is not None
            self.record(result_of(self.loaded, file, partial(_outcome, work, job)))

    def _finish(self, read_pool: Workers | None) -> None:
        """Record what is pending (cancelling what has not started when stopping) and close
        the workers."""
        stopping = self.stop.is_set()
        if stopping:
            with self._records:
                for _, _, job in self._pending:
                    if isinstance(job, Future):
                        job.cancel()
        self._settle(0)
        if read_pool is not None:
            read_pool.close()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=stopping)
        elif self._threads is not None:
            self._threads.close()


def _outcome(work: Drawing, job: Future[list[bool]]) -> ImageOutcome:
    return work.outcome(job.result())


def _finished(job: Job) -> bool:
    return not isinstance(job, Future) or job.done()
