"""Worker threads that never keep a stopping run, or the process, waiting; writer processes.

``ThreadPoolExecutor`` joins its threads when it shuts down and again when the interpreter exits,
so one thread stuck in a read would hold the run and the process forever. These threads are
daemons and nobody joins them: a stopping run cancels what has not started and walks away from
what has.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ..engine.passes import Stopped

T = TypeVar("T")
_POLL = 0.05  # seconds between looks at the stop flag while waiting
_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class Workers:
    """A fixed number of daemon threads running submitted calls in order."""

    def __init__(self, count: int, name: str) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._pending: set[Future[Any]] = set()
        self._lock = threading.Lock()
        self._count = count
        for number in range(count):
            threading.Thread(target=self._work, name=f"{name}-{number}", daemon=True).start()

    def submit(self, call: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._pending.add(future)
        self._tasks.put((future, call, args))
        return future

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            future, call, args = task
            with self._lock:
                self._pending.discard(future)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

    def cancel_pending(self) -> None:
        """Cancel every call not started yet (the threads then idle until the process ends)."""
        with self._lock:
            pending, self._pending = self._pending, set()
        for future in pending:
            future.cancel()

    def close(self) -> None:
        """Let each thread end once it has finished what it runs (no waiting for that here)."""
        for _ in range(self._count):
            self._tasks.put(None)


def result(future: Future[T], stop: threading.Event) -> T:
    """``future``'s result, or :class:`Stopped` as soon as ``stop`` is set while waiting."""
    while True:
        try:
            return future.result(timeout=_POLL)
        except FutureTimeout:
            if stop.is_set():
                raise Stopped from None


def process_pool(count: int) -> ProcessPoolExecutor:
    """``count`` worker processes (reading and decoding, drawing and writing), forked from a
    server that has imported only that code (no torch, no threads of ours): each starts in
    milliseconds and holds tens of MB."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["saliency.pipeline.drawing", "saliency.pipeline.reading"])
    from .drawing import start_writer

    return ProcessPoolExecutor(
        count, mp_context=context, initializer=start_writer, initargs=(os.getpid(),)
    )


def kill_processes(pool: ProcessPoolExecutor) -> None:
    """End a pool's processes now, whatever they are doing (their partial files are the
    caller's to remove)."""
    processes = getattr(pool, "_processes", None) or {}  # no public handle before Python 3.14
    for process in list(processes.values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
