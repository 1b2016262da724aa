"""The stages of a folder run: decode, explain a batch, draw and write one image's outputs."""

from __future__ import annotations

import errno
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..api import explain_batch
from ..engine.options import MethodOptions, method_settings
from ..engine.registry import get_method
from ..engine.report import RuleReport
from ..errors import ImageError
from ..explanation import Explanation
from ..files.inputs import InputFile
from ..files.rows import Row
from ..files.sources import SourceId
from ..geometry import Geometry
from ..grouping import by_shape
from ..models.loading import LoadedModel
from ..tasks.plan import FOUND, Records
from . import resident
from .options import JobOptions
from .reading import Pixels, read_pixels
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
class Map:
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
    items: list[Map]


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


def output_of(path: Path, loaded: LoadedModel, options: JobOptions) -> torch.Tensor:
    """The model's output (1, ...) for the photo at ``path``, read, decoded and prepared as the
    run prepares its photos (on the device with ``options.resident``): a plan's reference."""
    file = InputFile(Path(path), str(path), Path(Path(path).name))
    if options.resident:
        raw = resident.read(file)
        (photo,) = resident.decode_batch([raw], loaded.device)
        item = _on_device(raw, photo, loaded, options.fit)
    else:
        item = decode(file, loaded, options.fit)
    if item.tensor is None:
        raise ImageError(path, str(item.error))
    with torch.no_grad():
        return loaded.model(item.tensor[None].to(loaded.device))


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
    per_image: list[list[Map]] = [[] for _ in group]
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
                    Map(method, own, int(targets[i]), chosen[i], maps[i], extra, region)
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
