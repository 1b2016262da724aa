"""One run at a time per output folder, or one sharded run's processes together: locks on files
in it.

The locks are ``flock`` on ``.saliency.lock``: the kernel releases them when the holder exits,
however it exits, so a lock left by a killed run is never in the way. A lone run holds it
exclusively. The processes of a sharded run each hold it shared, and their shard's own file
(``.saliency.3-of-8.lock``) exclusively; so shards of one run write side by side, while a lone
run, a second process for the same shard and a run split another way are refused. Each file
names its holder (process, host, start time, command) for the message a refused run shows.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OutputBusyError, UnsafePathError
from .confine import open_no_follow
from .outputs import LOCK_FILE

if TYPE_CHECKING:
    from .shard import Shard

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

# How long a shard waits for a merge of the manifest parts (by a shard that finished) to end.
MERGE_WAIT = 20.0
SHARD_LOCK = re.compile(r"\.saliency\.(\d+)-of-(\d+)\.lock")

# (folder, shard name) -> (owning thread, descriptors, depth)
_held: dict[tuple[str, str | None], tuple[int, list[int], int]] = {}
_held_lock = threading.Lock()


def shard_lock_name(shard: Shard) -> str:
    return f".saliency.{shard.name}.lock"


@contextmanager
def lock_output(folder: Path, shard: Shard | None = None, merging: bool = False) -> Iterator[None]:
    """Hold ``folder`` for this run, for ``shard`` of a sharded run, or ``merging`` its
    manifest parts (a shard starting meanwhile waits). Raises :class:`OutputBusyError` naming
    the holder if another process (or another thread of this one) holds what this needs.
    Re-entrant in one thread."""
    folder.mkdir(parents=True, exist_ok=True)
    key = (os.path.realpath(folder), shard.name if shard is not None else None)
    me = threading.get_ident()
    with _held_lock:
        if key in _held:
            owner, fds, depth = _held[key]
            if owner != me:
                raise OutputBusyError(folder, "another run in this process")
            _held[key] = (owner, fds, depth + 1)
        elif any(k[0] == key[0] for k in _held):
            raise OutputBusyError(folder, "another run in this process")
        else:
            _held[key] = (me, _acquire(folder, shard, merging), 1)
    try:
        yield
    finally:
        with _held_lock:
            owner, fds, depth = _held[key]
            if depth > 1:
                _held[key] = (owner, fds, depth - 1)
            else:
                del _held[key]
                for fd in reversed(fds):
                    os.close(fd)  # releases the flock


def _open(path: Path) -> int:
    """The lock file, created if missing; a link there is refused, never written through."""
    return open_no_follow(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)


def _try(fd: int, mode: int) -> bool:
    """Take a lock without waiting: False if another holds it (True where flock is missing)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock: run unlocked rather than not at all
        pass
    return True


def _acquire(folder: Path, shard: Shard | None, merging: bool) -> list[int]:
    main = _open(folder / LOCK_FILE)
    if shard is None:
        if not _try(main, fcntl.LOCK_EX if fcntl else 0):
            holder = _held_shards(folder) or _describe(main)
            os.close(main)
            raise OutputBusyError(folder, holder)
        _sign(main, merging)
        return [main]
    deadline = time.monotonic() + MERGE_WAIT
    while not _try(main, fcntl.LOCK_SH if fcntl else 0):
        if _holder(main).get("merging") and time.monotonic() < deadline:  # brief: wait
            time.sleep(0.1)
            continue
        holder = _describe(main)
        os.close(main)
        raise OutputBusyError(folder, holder)
    own = _open(folder / shard_lock_name(shard))
    if not _try(own, fcntl.LOCK_EX if fcntl else 0):
        holder = f"shard {shard}: " + _describe(own)
        os.close(own)
        os.close(main)
        raise OutputBusyError(folder, holder)
    _sign(own)
    other = _held_shards(folder, other_than=shard.count)
    if other:
        os.close(own)
        os.close(main)
        raise OutputBusyError(folder, f"a run split in another number of shards: {other}")
    return [main, own]


def shard_locks(folder: Path) -> list[tuple[Path, int, int]]:
    """The shards' lock files in ``folder``, held or left behind: (path, index, count)."""
    found = []
    for path in sorted(folder.glob(".saliency.*-of-*.lock")):
        match = SHARD_LOCK.fullmatch(path.name)
        if match is not None:
            found.append((path, int(match[1]), int(match[2])))
    return found


def _held_shards(folder: Path, other_than: int | None = None) -> str:
    """The shards of sharded runs now writing in ``folder`` (of another count than
    ``other_than``), described; empty if none."""
    held = []
    for path, index, count in shard_locks(folder):
        if count == other_than:
            continue
        try:
            fd = open_no_follow(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, UnsafePathError):
            continue
        try:
            if not _try(fd, fcntl.LOCK_SH if fcntl else 0):
                held.append(f"shard {index}/{count}: {_describe(fd)}")
        finally:
            os.close(fd)
    return "; ".join(held)


def _sign(fd: int, merging: bool = False) -> None:
    me: dict[str, object] = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
        "merging": merging,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)


def _holder(fd: int) -> dict[str, object]:
    try:
        info = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
        return (
            f"process {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
