"""Deciding what a rerun redoes, and which earlier rows and pictures no longer hold.

A picture is kept only if its manifest row is ``ok``, was made with the same settings (the
fingerprint), from the same input content (see :func:`~saliency.files.sources.unchanged`), and
its files still exist. Everything else is redone; ``overwrite`` redoes everything. A file at an
output path that no row of ours names is ours only if it carries our marker; a stranger's file
is never replaced without ``overwrite``.

Where an image's targets are found by the model (each class present in a segmentation), its
rows record what was found: the image is done for a method when a fresh row stands for each
target found (or one row says nothing was), and is otherwise redone whole.
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
from ..tasks.plan import FOUND
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
    found = _found_rows(rows) if options.target.found else {}
    for file in files:
        try:
            if options.target.found:
                entries, stranger = _found_entries(file, options, found, fingerprints, gate), None
            else:
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


def _found_rows(rows: dict[str, Row]) -> dict[tuple[str, str], list[Row]]:
    """The ok rows that record what their image was found to have, by image and method."""
    found: dict[tuple[str, str], list[Row]] = {}
    for row in rows.values():
        if row.is_ok and row.method and isinstance(row.extra.get("found"), list):
            found.setdefault((row.image, row.method), []).append(row)
    return found


def _found_entries(
    file: InputFile,
    options: JobOptions,
    found: dict[tuple[str, str], list[Row]],
    fingerprints: dict[str, str],
    gate: Confinement,
) -> list[Entry]:
    """The methods to redo for ``file`` whose targets are found per image: those without a
    fresh row for each target its rows say it has (or a row saying it has none)."""
    base = file.base.as_posix()
    checked: dict[SourceId | None, bool] = {}
    entries: list[Entry] = []
    for method in options.methods:
        gate.inside(options.outputs(base, method, FOUND)[0])  # its folder may not lead out
        rows = found.get((file.shown, method), [])
        if options.overwrite or not _all_there(rows, base, method, options):
            entries.append((method, FOUND))
            continue
        for row in rows:
            if not _fresh(row, fingerprints[method], gate):
                entries.append((method, FOUND))
                break
            recorded = SourceId.from_dict(row.source)
            if recorded not in checked:
                checked[recorded] = unchanged(file.path, recorded)
            if not checked[recorded]:
                entries.append((method, FOUND))
                break
    return entries


def _all_there(rows: list[Row], base: str, method: str, options: JobOptions) -> bool:
    """Whether ``rows`` are exactly one per target their first row says was found (one row
    without outputs where none was)."""
    if not rows:
        return False
    said = rows[0].extra["found"]
    if not said:
        return len(rows) == 1 and not rows[0].outputs
    wanted = {options.outputs(base, method, str(suffix))[0] for suffix in said}
    have = [row.outputs[0] for row in rows if row.outputs and row.extra.get("found") == said]
    return len(have) == len(rows) and set(have) == wanted


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
    """What this run did to one image: its planned pictures' keys, the identity of the content
    it read (None if the image failed), and the methods whose targets it looked for afresh
    (whose earlier rows of found targets all go, but those written now)."""

    keys: set[str]
    source: SourceId | None
    found: frozenset[str] = frozenset()


def keep_row(row: Row, written: set[str], attempts: dict[str, Attempt]) -> bool:
    """Whether an earlier row still holds after this run (rows written now always do).

    An image that failed now loses the rows of the pictures this run meant to make; an image
    read now loses its error row and every row made from other content (any method); a method
    whose targets were looked for again loses the rows of targets no longer found.
    """
    if row.key in written:
        return True
    attempt = attempts.get(row.image)
    if attempt is None:
        return True
    if row.method in attempt.found and isinstance(row.extra.get("found"), list):
        return False  # looked for again: what is found now was written now
    if attempt.source is None:
        return row.key not in attempt.keys
    if not row.is_ok:
        return False
    recorded = SourceId.from_dict(row.source)
    return recorded is not None and recorded.sha256 == attempt.source.sha256
