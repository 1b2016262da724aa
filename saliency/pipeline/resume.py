"""Deciding what a rerun redoes, and which earlier rows and pictures no longer hold.

A picture is kept only if its manifest row is ``ok``, was made with the same settings (the
fingerprint), from the same input content (see :func:`~saliency.files.sources.unchanged`), and
its files still exist. Everything else is redone; ``overwrite`` redoes everything. A file at an
output path that no row of ours names is ours only if it carries our marker; a stranger's file
is never replaced without ``overwrite``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UnsafePathError
from ..files.confine import Confinement
from ..files.inputs import InputFile
from ..files.rows import Row, row_key
from ..files.sources import SourceId, unchanged
from .drawing import is_ours
from .options import JobOptions

Entry = tuple[str, str]  # (method, target suffix): one picture of an image


@dataclass
class Plan:
    """What a run does: per image to explain, the pictures to make; the images with nothing to
    do; the images refused because a stranger's file sits at an output path."""

    todo: dict[InputFile, list[Entry]] = field(default_factory=dict)
    done: list[InputFile] = field(default_factory=list)
    refused: list[tuple[InputFile, str]] = field(default_factory=list)

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods some image still needs, in the order asked."""
        needed: dict[str, None] = {}
        for entries in self.todo.values():
            needed.update((method, None) for method, _ in entries)
        return tuple(needed)


def plan_run(
    files: Iterable[InputFile],
    options: JobOptions,
    rows: dict[str, Row],
    fingerprints: dict[str, str],
    out_dir: Path,
) -> Plan:
    """Which pictures of ``files`` are still to make, given the manifest's latest ``rows``. An
    image whose output paths the file system refuses (a name too long, a folder it may not
    enter) is refused with the reason, alone: the others go on."""
    plan = Plan()
    gate = Confinement(out_dir)  # the folder and each output folder resolved once
    for file in files:
        try:
            entries, stranger = _entries(file, options, rows, fingerprints, gate)
        except UnsafePathError as exc:
            plan.refused.append((file, f"cannot write its outputs: {exc}"))
            continue
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            plan.refused.append((file, f"cannot write its outputs: {exc.strerror or exc}{where}"))
            continue
        if stranger is not None:
            reason = (
                f"{out_dir / stranger} exists and was not written by saliency; move it away or "
                "use --overwrite to replace it"
            )
            plan.refused.append((file, reason))
        elif entries:
            plan.todo[file] = entries
        else:
            plan.done.append(file)
    return plan


def _entries(
    file: InputFile,
    options: JobOptions,
    rows: dict[str, Row],
    fingerprints: dict[str, str],
    gate: Confinement,
) -> tuple[list[Entry], str | None]:
    """The pictures of ``file`` to make, and the first output path a stranger's file holds."""
    out_dir = gate.folder
    base = file.base.as_posix()
    checked: dict[SourceId | None, bool] = {}  # one stat (or hash) per recorded identity
    entries: list[Entry] = []
    stranger = None
    for method in options.methods:
        for suffix in options.target.suffixes():
            outputs = options.outputs(base, method, suffix)
            for name in outputs:  # no folder of an output may be a link leading out
                gate.inside(name)
            row = rows.get(row_key(file.shown, outputs))
            if options.overwrite:
                entries.append((method, suffix))
                continue
            if row is not None and _fresh(row, fingerprints[method], gate):
                recorded = SourceId.from_dict(row.source)
                if recorded not in checked:
                    checked[recorded] = unchanged(file.path, recorded)
                if checked[recorded]:
                    continue
            entries.append((method, suffix))
            if row is None and not ours(out_dir / outputs[0]):
                stranger = stranger or outputs[0]
    return entries, stranger


def _fresh(row: Row, fingerprint: str, gate: Confinement) -> bool:
    return (
        row.is_ok
        and row.fingerprint == fingerprint
        and all(
            gate.is_inside(name, follow=True) and (gate.folder / name).is_file()
            for name in row.outputs
        )
    )


def ours(picture: Path) -> bool:
    """Whether a file at an output path may be replaced: absent, or carrying our marker (a link
    is a stranger's, whatever it points to: it is neither read nor written through)."""
    if os.path.islink(picture):
        return False
    return not picture.exists() or is_ours(picture)


@dataclass
class Attempt:
    """What this run did to one image: its planned pictures' keys, and the identity of the
    content it read (None if the image failed)."""

    keys: set[str]
    source: SourceId | None


def keep_row(row: Row, written: set[str], attempts: dict[str, Attempt]) -> bool:
    """Whether an earlier row still holds after this run (rows written now always do).

    An image that failed now loses the rows of the pictures this run meant to make; an image
    read now loses its error row and every row made from other content (any method).
    """
    if row.key in written:
        return True
    attempt = attempts.get(row.image)
    if attempt is None:
        return True
    if attempt.source is None:
        return row.key not in attempt.keys
    if not row.is_ok:
        return False
    recorded = SourceId.from_dict(row.source)
    return recorded is not None and recorded.sha256 == attempt.source.sha256
