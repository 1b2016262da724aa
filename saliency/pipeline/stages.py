"""The stages of a folder run: decode, explain a batch, draw and write one image's outputs."""

from __future__ import annotations

import errno
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from ..api import explain_batch
from ..engine.options import MethodOptions, method_settings
from ..engine.registry import get_method
from ..engine.report import RuleReport
from ..errors import ImageError
from ..explanation import Explanation
from ..files.inputs import InputFile
from ..files.raw_maps import RawStore
from ..files.rows import Prediction, Row
from ..files.sources import SourceId
from ..geometry import Geometry
from ..grouping import by_shape
from ..models.loading import LoadedModel
from ..pictures.render import EMPTY_MESSAGE, prepare
from ..tasks.plan import FOUND, Records, TargetPlan
from . import resident
from .drawing import DrawTask, Picture, marker_text
from .options import JobOptions
from .reading import Pixels, read_pixels
from .resume import Entry, ours
from .workers import Workers, result

T = TypeVar("T")
# write errors of the whole output folder, not of one image's outputs: they end the run
RUN_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EROFS", "EIO") if hasattr(errno, name)
)


@dataclass
class ImageOutcome:
    """What happened to one image: its manifest rows, or its error; ``done`` if nothing was
    left to do (every output already written in an earlier run)."""

    input: InputFile
    rows: list[Row] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    done: bool = False


@dataclass
class Decoded:
    """A photo ready for the model, and the identity of the bytes it came from; the photo itself
    is not kept (writers re-read it if needed, and check it is the same)."""

    input: InputFile
    tensor: torch.Tensor | None = None
    geometry: Geometry | None = None
    source: SourceId | None = None
    error: str | None = None
    photo: torch.Tensor | None = None  # uint8 (3, H, W) on the device: the resident path
    cpu_note: str | None = None  # resident path: why it was decoded or done on the CPU

    @property
    def shape(self) -> tuple[int, ...]:
        """The model input's shape: inputs of one shape can share a batch."""
        return () if self.tensor is None else tuple(self.tensor.shape)


@dataclass
class _Map:
    """One map of one image, with what its manifest row needs."""

    method: str
    suffix: str
    target: int
    probability: float | None
    maps: torch.Tensor
    extra: dict[str, Any]
    region: torch.Tensor | None = None  # a segmentation class's pixels, outlined on the picture


@dataclass
class Explained:
    """Everything a writer needs for one image."""

    decoded: Decoded
    top5: list[dict[str, Any]]
    items: list[_Map]


def result_of(
    loaded: LoadedModel, file: InputFile, get: Callable[[], ImageOutcome]
) -> ImageOutcome:
    """``get()``, a writer's outcome, with its failure turned into this image's error; a
    failure that no other image could escape (the disk is full, the file system read-only) is
    the run's and raised."""
    try:
        return get()
    except OSError as exc:  # could not write: this image failed, the run goes on
        if exc.errno in RUN_ERRNOS:
            raise
        reason = f"cannot write output: {exc.strerror or exc}" + (
            f": {exc.filename}" if exc.filename else ""
        )
        return error_outcome(loaded.name, file, reason)
    except ImageError as exc:
        return error_outcome(loaded.name, file, exc.reason)
    except Exception as exc:  # rendering failed unexpectedly: report it as this image's error
        return error_outcome(loaded.name, file, f"{type(exc).__name__}: {exc}")


def error_outcome(model: str, file: InputFile, reason: str) -> ImageOutcome:
    """An input that produced nothing with ``model``: its error row."""
    return ImageOutcome(file, rows=[Row.failed(file.shown, model, reason)], error=reason)


def decode(file: InputFile, loaded: LoadedModel, fit: str | None) -> Decoded:
    """``file`` read, decoded and made the model's input (see :mod:`.reading`)."""
    return to_decoded(read_pixels(file, loaded.preprocessing, fit), loaded)


def to_decoded(read: Pixels, loaded: LoadedModel) -> Decoded:
    """A reader's pixels as the model's input tensor."""
    if read.pixels is None:
        return Decoded(read.input, error=read.error)
    tensor = loaded.preprocessing.to_tensor(read.pixels)
    return Decoded(read.input, tensor, read.geometry, read.source)


def prefetch(
    pool: Workers | ProcessPoolExecutor,
    files: list[InputFile],
    work: Callable[[InputFile], T],
    ahead: int,
    stop: threading.Event,
) -> Iterator[T]:
    """``work(file)`` (reading, decoding) for each file in order, ``ahead`` of them in flight;
    :class:`Stopped` once ``stop`` is set, even while a reader is stuck."""
    queue: deque[Future[T]] = deque()
    it = iter(files)
    for file in it:
        queue.append(pool.submit(work, file))
        if len(queue) >= ahead:
            break
    while queue:
        done = result(queue.popleft(), stop)
        nxt = next(it, None)
        if nxt is not None:
            queue.append(pool.submit(work, nxt))
        yield done


def decoded_batches(
    pool: Workers | ProcessPoolExecutor,
    files: list[InputFile],
    loaded: LoadedModel,
    options: JobOptions,
    ahead: int,
    stop: threading.Event,
) -> Iterator[list[Decoded]]:
    """Batches of photos ready for the model: decoded by the readers (threads or processes),
    or with ``options.
    resident``, read by the readers and decoded and preprocessed on the model's device (each
    then keeps its photo there, to be drawn on)."""
    size = options.batch_size
    if not options.resident:
        read = partial(read_pixels, preprocessing=loaded.preprocessing, fit=options.fit)
        for read_batch in batches(prefetch(pool, files, read, ahead, stop), size):
            yield [to_decoded(item, loaded) for item in read_batch]
        return
    for raws in batches(prefetch(pool, files, resident.read, ahead, stop), size):
        photos = resident.decode_batch(raws, loaded.device)
        yield [
            _on_device(raw, photo, loaded, options.fit)
            for raw, photo in zip(raws, photos, strict=True)
        ]


def _on_device(
    raw: resident.Raw, photo: resident.Photo, loaded: LoadedModel, fit: str | None
) -> Decoded:
    """A photo decoded for the resident path, preprocessed on the device; where the device
    fails on it, redone on the CPU path (Pillow, CPU preprocessing and drawing), with a note
    saying why: an input the CPU path can do never fails here."""
    if raw.error is not None or photo.pixels is None:
        return Decoded(raw.input, error=raw.error or photo.note)
    try:
        tensor, geometry = resident.preprocess(photo.pixels, loaded, fit)
    except Exception as exc:
        redone = decode(raw.input, loaded, fit)
        if redone.tensor is not None:
            redone.tensor = redone.tensor.to(loaded.device)
            redone.cpu_note = resident.REDONE.format(why=resident.why(exc))
        return redone
    return Decoded(raw.input, tensor, geometry, raw.source, photo=photo.pixels, cpu_note=photo.note)


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def same_shape(items: Iterable[Decoded]) -> list[list[Decoded]]:
    """The decoded inputs in groups of one shape, each to run as one batch."""
    ready = [item for item in items if item.tensor is not None]
    return [[ready[i] for i in group] for group in by_shape(item.shape for item in ready)]


def explain_group(
    loaded: LoadedModel,
    group: list[Decoded],
    options: JobOptions,
    reports: dict[str, RuleReport],
    should_stop: Callable[[], bool] | None = None,
) -> list[Explained]:
    batch = torch.stack([item.tensor for item in group])  # type: ignore[misc]
    if batch.device.type == "cpu" and loaded.device.type == "cuda":
        batch = batch.pin_memory().to(loaded.device, non_blocking=True)
    elif batch.device.type != loaded.device.type:  # the resident path's are there already
        batch = batch.to(loaded.device)
    per_image: list[list[_Map]] = [[] for _ in group]
    logits, results = explain_batch(
        loaded, batch, options.methods, options.target.targets, options.method_options,
        should_stop=should_stop,
    )  # fmt: skip
    plan = options.target
    probs = plan.probabilities(logits)
    size = (batch.shape[-2], batch.shape[-1])
    geometries = [item.geometry for item in group]

    def records_of(rows: list[int] | None) -> Records:
        return plan.records(logits, size, rows, geometries, loaded.categories)  # type: ignore[arg-type]

    present = plan.present(logits) if plan.found else None
    ranked = plan.ranked(present) if present is not None else []
    suffixes = [FOUND] * len(results) if plan.found else plan.suffixes()
    records = records_of(None) if present is None else Records()
    for rank, (suffix, by_method) in enumerate(zip(suffixes, results, strict=True)):
        if present is not None:  # each image's target of this rank, over its pixels or box
            records = records_of(ranked[rank])
        for method in options.methods:
            result = by_method[method]
            reports.setdefault(method, result.report)
            maps = result.maps.float() if options.resident else result.maps.float().cpu()
            targets = result.targets.cpu()
            maps, extras = plan.adjust(maps, records, _extras(result, options.method_options))
            if records.keys is not None:
                extras = [{**e, **f} for e, f in zip(extras, records.keys, strict=True)]
            chosen = records.chosen
            if chosen is None:  # each target's probability
                assert probs is not None
                chosen = probs.gather(1, targets.view(-1, 1))[:, 0].tolist()
            for i in range(len(group)):
                own, extra = suffix, extras[i]
                if present is not None:
                    if rank >= len(present[i]):
                        continue  # a rank this image has no target for
                    own = plan.found_suffix(present[i][rank])
                    extra = {**extra, "found": [plan.found_suffix(c) for c in present[i]]}
                region = None if records.regions is None else records.regions[i]
                per_image[i].append(
                    _Map(method, own, int(targets[i]), chosen[i], maps[i], extra, region)
                )
    return [Explained(item, _top5(probs, i, loaded), per_image[i]) for i, item in enumerate(group)]


def _top5(probs: torch.Tensor | None, i: int, loaded: LoadedModel) -> list[dict[str, Any]]:
    """Image ``i``'s five most probable classes (none for an embedding)."""
    if probs is None:
        return []
    top = probs[i].topk(min(5, probs.shape[1]))
    return [
        {"class": int(c), "name": loaded.categories[int(c)], "probability": round(float(p), 6)}
        for p, c in zip(top.values, top.indices, strict=True)
    ]


def _extras(result: Explanation, options: MethodOptions) -> list[dict[str, Any]]:
    """Per image, what ``result``'s row records beyond the base keys: the method's settings
    that change its maps, SmoothGrad's, then the method's own per-image keys."""
    method = get_method(result.method)
    settings = method_settings(method, options)
    if result.smooth:
        settings.update(smooth=result.smooth, noise=options.noise, seed=options.seed)
    return [{**settings, **own} for own in method.manifest_keys(result, options)]


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
                source.to_dict(),
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
    entry: _Map, decoded: Decoded, options: JobOptions, outputs: list[str],
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
            source.to_dict(),
            fingerprints[method],
            {"found": [], "note": plan.nothing},
        )  # fmt: skip
        for method, suffix in wanted
        if suffix == FOUND and method not in some
    ]
