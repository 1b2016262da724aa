"""Progress inside a batch: the passes of an expanded batch (noisy copies, path points,
occluded or masked copies, Score-CAM's channels) as they run, for a caller that shows it. A
Score-CAM or RISE image can take minutes; a progress bar by images alone would sit still."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PassWatcher = Callable[[int, int], None]  # (copies done, copies in the expanded batch)

_lock = threading.Lock()
_watchers: list[PassWatcher] = []


@contextmanager
def watching_passes(watcher: PassWatcher) -> Iterator[None]:
    """Call ``watcher(done, total)`` after each pass of every expanded batch, in any thread of
    this process, while the block runs. It must be quick and must not raise."""
    with _lock:
        _watchers.append(watcher)
    try:
        yield
    finally:
        with _lock:
            _watchers.remove(watcher)


def passed(done: int, total: int) -> None:
    """Tell the watchers that ``done`` of ``total`` copies of an expanded batch have run."""
    if not _watchers:
        return
    with _lock:
        watchers = list(_watchers)
    for watcher in watchers:
        watcher(done, total)
