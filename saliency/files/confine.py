"""The one gate between a name read from a folder's files and a file: what a manifest row, a
part or a report's sources name is followed only if it stays inside the folder.

An output folder is copied, shared and downloaded; its files are input like any other, possibly
crafted. So a name read from one is trusted only as a path *inside* the folder: absolute names,
``..`` and links that lead out are refused with :class:`~saliency.errors.UnsafePathError`, and the
caller treats that row as foreign (kept, never acted on). The folder itself is the user's choice
and is trusted, wherever it is. Files a run replaces are replaced by renaming onto them, which
replaces a link rather than writing through it; files opened for appending or locking are
opened with ``O_NOFOLLOW`` (see :func:`open_no_follow`).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..errors import UnsafePathError

__all__ = ["Confinement", "inside", "is_inside", "open_no_follow", "refuse_link"]


class Confinement:
    """One folder's gate, for the many names of one pass over it (a run's plan, a report): the
    folder's real path is found once, and each parent folder's once, so that checking 30,000
    outputs resolves a few folders, not 30,000. Keep one for one pass only: the folders are not
    looked at again while it lives."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = os.path.realpath(folder)
        self._parents: dict[str, bool] = {}  # parent folder -> whether it stays inside

    def inside(self, name: str, follow: bool = False) -> Path:
        """``folder / name``, if ``name`` stays inside ``folder``.

        Refuses a name that is not a plain relative path (empty, absolute, with ``..`` or a
        NUL) or whose folders lead outside ``folder`` through a link; with ``follow`` (the file
        is to be read), also one that is itself a link leading outside. Without ``follow`` the
        last part may be a link: deleting or replacing it changes the link, not what it points
        to.
        """
        folder = self.folder
        if not isinstance(name, str) or not name or "\x00" in name:
            raise UnsafePathError(folder, str(name), "not a file name")
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or name.startswith("~"):
            raise UnsafePathError(folder, name, "not a path inside the folder")
        path = folder / relative
        parent = str(path.parent)
        stays = self._parents.get(parent)
        if stays is None:
            stays = self._parents[parent] = _within(os.path.realpath(parent), self.root)
        if not stays:
            raise UnsafePathError(folder, name, "its folder is a link leading outside")
        if follow and not _within(os.path.realpath(path), self.root):
            raise UnsafePathError(folder, name, "a link leading outside")
        return path

    def is_inside(self, name: str, follow: bool = False) -> bool:
        """Whether :meth:`inside` accepts ``name``."""
        try:
            self.inside(name, follow)
        except UnsafePathError:
            return False
        return True


def inside(folder: Path, name: str, follow: bool = False) -> Path:
    """``folder / name``, if ``name`` stays inside ``folder`` (see :meth:`Confinement.inside`)."""
    return Confinement(folder).inside(name, follow)


def is_inside(folder: Path, name: str, follow: bool = False) -> bool:
    """Whether :func:`inside` accepts ``name``."""
    return Confinement(folder).is_inside(name, follow)


def refuse_link(path: Path) -> None:
    """Raise :class:`UnsafePathError` if ``path`` is a link: a file of the folder's own (its
    manifest, its lock) is never read or written through one."""
    if os.path.islink(path):
        raise UnsafePathError(path.parent, path.name, "a link, not a file; remove it")


def open_no_follow(path: Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a link at ``path`` (:class:`UnsafePathError`) instead of
    writing through it."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError:
        refuse_link(path)  # a link there: said as such; any other error as it is
        raise


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
