"""One run at a time per output folder: an exclusive lock on a file in it.

The lock is ``flock`` on ``.saliency.lock``: the kernel releases it when the holder exits, however
it exits, so a lock left by a killed run is never in the way. The file itself names the holder
(process, host, start time, command) for the message a second run shows.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputBusyError
from .outputs import LOCK_FILE

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

_held: dict[str, tuple[int, int, int]] = {}  # folder -> (owning thread, descriptor, depth)
_held_lock = threading.Lock()


@contextmanager
def lock_output(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for this run. Raises :class:`OutputBusyError` naming the running holder
    if another process (or another thread of this one) holds it. Re-entrant in one thread."""
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    me = threading.get_ident()
    with _held_lock:
        if key in _held:
            owner, fd, depth = _held[key]
            if owner != me:
                raise OutputBusyError(folder, "another run in this process")
            _held[key] = (owner, fd, depth + 1)
        else:
            _held[key] = (me, _acquire(folder), 1)
    try:
        yield
    finally:
        with _held_lock:
            owner, fd, depth = _held[key]
            if depth > 1:
                _held[key] = (owner, fd, depth - 1)
            else:
                del _held[key]
                os.close(fd)  # releases the flock


def _acquire(folder: Path) -> int:
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise OutputBusyError(folder, holder) from None
        except OSError:  # a file system without flock: run unlocked rather than not at all
            pass
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    return fd


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
        return (
            f"process {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
