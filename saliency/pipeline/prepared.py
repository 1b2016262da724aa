"""The draw stage of a folder run: one image's explained maps as pictures prepared for a writer
(planes to paint with the plan's outline, or box and label; or drawn on the device), and the
manifest rows they get once written."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.registry import get_method
from ..files.inputs import InputFile
from ..files.raw_maps import RawStore
from ..files.rows import Prediction, Row
from ..models.loading import LoadedModel
from ..pictures.render import EMPTY_MESSAGE, prepare
from ..tasks.plan import FOUND, TargetPlan
from . import resident
from .drawing import DrawTask, Picture, marker_text
from .options import JobOptions
from .resume import Entry, ours
from .stages import Decoded, Explained, ImageOutcome, Map


@dataclass
class Drawing:
    """One image's pictures on their way to a writer, with the rows they get once written."""

    input: InputFile
    task: DrawTask
    rows: list[Row]
    notes: list[str] = field(default_factory=list)  # warnings beyond empty maps

    def outcome(self, empty: list[bool]) -> ImageOutcome:
        """The image's outcome once its writer returned ``empty`` (per picture)."""
        pairs = zip([row for row in self.rows if row.outputs], empty, strict=True)
        warnings = [f"{row.method}: {EMPTY_MESSAGE}" for row, blank in pairs if blank]
        warnings += self.notes
        return ImageOutcome(self.input, rows=self.rows, warnings=warnings)


def drawing(
    loaded: LoadedModel,
    item: Explained,
    out_dir: Path,
    options: JobOptions,
    wanted: Collection[Entry],
    fingerprints: dict[str, str],
    raw_store: RawStore | None = None,
) -> Drawing:
    """The ``wanted`` pictures of one image, prepared for a writer (see :mod:`.drawing`), and
    their manifest rows; raw maps go to ``raw_store`` if given."""
    decoded = item.decoded
    file, geometry, source = decoded.input, decoded.geometry, decoded.source
    assert geometry is not None and source is not None
    task = DrawTask(file.path, source.sha256, geometry, out_dir, options.render, options.encoding)
    rows, notes = [], []
    for entry in item.items:
        method = entry.method
        if (method, entry.suffix) not in wanted and (method, FOUND) not in wanted:
            continue
        outputs = options.outputs(file.base.as_posix(), method, entry.suffix)
        if options.target.found and not options.overwrite and not ours(out_dir / outputs[0]):
            notes.append(f"{outputs[0]} exists and was not written by saliency; move it away or "
                         "use --overwrite to replace it")  # fmt: skip
            continue
        raw = entry.maps.cpu().numpy().astype(np.float32) if options.save_raw else None
        extra = dict(entry.extra)
        if raw is not None and raw_store is not None:  # into a container, not to the writer
            name = options.stem(file.base.as_posix(), method, entry.suffix)
            container = raw_store.add(name, raw, geometry.to_dict())
            raw, extra["raw"] = None, name
            outputs = [*outputs, container]
        mark = marker_text(fingerprints[method], source.sha256)
        task.pictures.append(_picture(entry, decoded, options, outputs, raw, mark))
        name = options.target.name(entry.target, loaded.categories)
        probability = None if entry.probability is None else round(entry.probability, 6)
        prediction = Prediction(entry.target, name, probability, item.top5)
        rows.append(
            Row.ok(
                file.shown,
                loaded.name,
                method,
                prediction,
                outputs,
                source.record(file.path),
                fingerprints[method],
                extra,
            )  # fmt: skip
        )
    if options.target.found:  # a method that found nothing says so, once per image
        nothing = _nothing_found(loaded, item, wanted, fingerprints, options.target)
        notes += [f"{row.method}: {options.target.nothing}" for row in nothing]
        rows += nothing
    return Drawing(file, task, rows, notes)


def _picture(
    entry: Map, decoded: Decoded, options: JobOptions, outputs: list[str],
    raw: np.ndarray | None, mark: str,
) -> Picture:  # fmt: skip
    """One map's picture for the writer: planes to paint on the CPU (with a region's outline, or
    a detection's box and label), or drawn on the device (encoded there too for jpg)."""
    shown = get_method(entry.method).shown(entry.maps)
    if decoded.photo is None:
        planes = prepare(shown, options.render)
        region = None if entry.region is None else entry.region.cpu().numpy()
        drawn = options.target.decoration(entry.extra, region)  # an outline, or a box and label
        return Picture(outputs, planes, raw, mark, outline=drawn.outline, box=drawn.box,
                       label=drawn.label)  # fmt: skip
    assert decoded.geometry is not None
    pixels, blank = resident.paint(decoded.photo, shown, decoded.geometry, options.render)
    if entry.region is not None:
        pixels = resident.outline(pixels, entry.region, decoded.geometry)
    encoded, array = None, None
    if options.encoding.format == "jpg":
        encoded = resident.encode(pixels, options.encoding.quality, mark)
    else:
        array = pixels.permute(1, 2, 0).contiguous().cpu().numpy()
    empty = bool(blank)  # read once the picture is: no wait of its own
    return Picture(outputs, None, raw, mark, array, encoded, empty)


def _nothing_found(
    loaded: LoadedModel,
    item: Explained,
    wanted: Collection[Entry],
    fingerprints: dict[str, str],
    plan: TargetPlan,
) -> list[Row]:
    """A row for each wanted method that found no target in the image (no class present but
    the background, no detection), so that the image counts as done and a rerun does not look
    again."""
    source = item.decoded.source
    assert source is not None
    some = {entry.method for entry in item.items}
    return [
        Row.nothing(
            item.decoded.input.shown,
            loaded.name,
            method,
            source.record(item.decoded.input.path),
            fingerprints[method],
            {"found": [], "note": plan.nothing},
        )  # fmt: skip
        for method, suffix in wanted
        if suffix == FOUND and method not in some
    ]
