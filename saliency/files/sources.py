"""Reading input files without ever blocking, and telling whether a file changed since a run.

Only regular files are read. A named pipe, socket or device can block an ``open`` or a ``read``
forever, so files are opened non-blocking and checked with ``fstat`` before any read: the check
and the read are on the same descriptor, so a file swapped for a pipe in between is refused too.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@dataclass(frozen=True)
class SourceId:
    """What identifies an input's content: size and modification time (cheap, from ``stat``)
    and the SHA-256 of the bytes read (exact, computed while reading)."""

    size: int
    mtime_ns: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """What a manifest row records of its input: this identity and where it was read (an
        absolute path), so that a report made from another folder finds the photo."""
        return {**asdict(self), "path": os.path.abspath(path)}

    @classmethod
    def from_dict(cls, data: object) -> SourceId | None:
        """The identity a manifest row recorded, or None if it has none (or a malformed one)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(int(data["size"]), int(data["mtime_ns"]), str(data["sha256"]))
        except (KeyError, TypeError, ValueError):
            return None


def read_regular(path: str | os.PathLike[str]) -> tuple[bytes, SourceId]:
    """The bytes of a regular file (or a link to one) and their identity.

    Raises :class:`ImageError` for a missing file, a folder, a pipe, socket or device (without
    blocking on it), a file that cannot be read, or one over a megabyte whose first bytes are
    no image's (read no further).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        reason = "broken link" if path.is_symlink() else "no such file"
        raise ImageError(path, reason) from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder") from None
    except PermissionError:
        raise ImageError(path, "permission denied") from None
    except OSError as exc:  # e.g. ENXIO: a socket, or a pipe with no writer
        raise ImageError(path, f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(path, "is a folder")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(path, f"not a regular file: {kind_of(info.st_mode)}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            head = handle.read(16)
            if info.st_size > SNIFF_ABOVE and not looks_like_an_image(head):
                raise ImageError(path, "not an image Pillow can read")  # the rest never read
            data = head + handle.read()
    except OSError as exc:
        raise ImageError(path, f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return data, SourceId(len(data), info.st_mtime_ns, hashlib.sha256(data).hexdigest())


SNIFF_ABOVE = 1 << 20  # bytes: a larger file is read whole only if its first bytes are an image's


def looks_like_an_image(head: bytes) -> bool:
    """Whether a file's first 16 bytes are those of a format Pillow can open (its plugins'
    own signature checks), so that a huge file that is no image is refused without being read
    whole. Small files are not sniffed: Pillow itself tells."""
    from PIL import Image

    Image.init()
    for _, accept in Image.OPEN.values():
        try:
            if accept is not None and accept(head):
                return True
        except Exception:  # a plugin's check that cannot take so short a prefix
            continue
    return False


def unchanged(path: str | os.PathLike[str], recorded: SourceId | None) -> bool:
    """Whether ``path`` still holds what ``recorded`` describes.

    Same size and modification time count as unchanged (as make and rsync assume); a file with the
    same size but a new time (copied, touched) is hashed, so only a real change of content counts.
    """
    if recorded is None:
        return False
    try:
        info = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_size != recorded.size:
        return False
    if info.st_mtime_ns == recorded.mtime_ns:
        return True
    try:
        return read_regular(path)[1].sha256 == recorded.sha256
    except ImageError:
        return False
