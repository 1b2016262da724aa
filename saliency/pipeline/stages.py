"""The stages of a folder run: decode, explain a batch, draw and write one image's outputs."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..api import explain_batch
from ..engine.hooks import RuleReport
from ..engine.method import MethodOptions
from ..engine.registry import get_method
from ..errors import ImageError
from ..explanation import Explanation
from ..files.images import load_image
from ..files.inputs import InputFile
from ..files.sources import SourceId, read_regular
from ..geometry import Geometry
from ..models.loading import LoadedModel
from ..pictures.render import EMPTY_MESSAGE, prepare
from .drawing import DrawTask, Picture, marker_text
from .options import JobOptions
from .resume import Entry
from .workers import Workers, result


@dataclass
class ImageOutcome:
    """What happened to one image: its manifest rows, or its error; ``done`` if nothing was
    left to do (every output already written in an earlier run)."""

    input: InputFile
    rows: list[dict[str, Any]] = field(default_factory=list)
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


@dataclass
class _Map:
    """One map of one image, with what its manifest row needs."""

    method: str
    suffix: str
    target: int
    probability: float
    maps: torch.Tensor
    extra: dict[str, Any]


@dataclass
class _Explained:
    """Everything a writer needs for one image."""

    decoded: Decoded
    top5: list[dict[str, Any]]
    items: list[_Map]


def result_of(
    loaded: LoadedModel, file: InputFile, get: Callable[[], ImageOutcome]
) -> ImageOutcome:
    """``get()``, a writer's outcome, with its failure turned into this image's error."""
    try:
        return get()
    except OSError as exc:  # could not write: this image failed, the run goes on
        reason = f"cannot write output: {exc.strerror or exc}" + (
            f": {exc.filename}" if exc.filename else ""
        )
        return error_outcome(loaded, file, reason)
    except ImageError as exc:
        return error_outcome(loaded, file, exc.reason)
    except Exception as exc:  # rendering failed unexpectedly: report it as this image's error
        return error_outcome(loaded, file, f"{type(exc).__name__}: {exc}")


def error_row(image: str, model: str, reason: str) -> dict[str, Any]:
    """The manifest row of an input that produced nothing."""
    row: dict[str, Any] = {"image": image, "model": model, "top5": [], "outputs": []}
    row.update(status="error", error=reason)
    return row


def error_outcome(loaded: LoadedModel, file: InputFile, reason: str) -> ImageOutcome:
    return ImageOutcome(file, rows=[error_row(file.shown, loaded.name, reason)], error=reason)


def decode(file: InputFile, loaded: LoadedModel, fit: str | None) -> Decoded:
    try:
        data, source = read_regular(file.path)
        reduce_for = partial(loaded.preprocessing.source_size, fit=fit)
        image = load_image(file.path, reduce_for, data=data)
        del data
        tensor, geometry = loaded.preprocess(image, fit)
        return Decoded(file, tensor, geometry, source)
    except Exception as exc:  # never let one bad file stop the run
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        return Decoded(file, error=reason)


def prefetch(
    pool: Workers,
    files: list[InputFile],
    loaded: LoadedModel,
    fit: str | None,
    ahead: int,
    stop: threading.Event,
) -> Iterator[Decoded]:
    """The decoded files in order, ``ahead`` of them in flight; :class:`Stopped` once ``stop``
    is set, even while a reader is stuck."""
    queue: deque[Future[Decoded]] = deque()
    it = iter(files)
    for file in it:
        queue.append(pool.submit(decode, file, loaded, fit))
        if len(queue) >= ahead:
            break
    while queue:
        decoded = result(queue.popleft(), stop)
        nxt = next(it, None)
        if nxt is not None:
            queue.append(pool.submit(decode, nxt, loaded, fit))
        yield decoded


def batches(items: Iterable[Decoded], size: int) -> Iterator[list[Decoded]]:
    batch: list[Decoded] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def same_shape(items: Iterable[Decoded]) -> list[list[Decoded]]:
    groups: dict[tuple[int, ...], list[Decoded]] = {}
    for item in items:
        assert item.tensor is not None
        groups.setdefault(tuple(item.tensor.shape), []).append(item)
    return list(groups.values())


def explain_group(
    loaded: LoadedModel,
    group: list[Decoded],
    options: JobOptions,
    reports: dict[str, RuleReport],
    should_stop: Callable[[], bool] | None = None,
) -> list[_Explained]:
    batch = torch.stack([item.tensor for item in group])  # type: ignore[misc]
    if loaded.device.type == "cuda":
        batch = batch.pin_memory().to(loaded.device, non_blocking=True)
    else:
        batch = batch.to(loaded.device)
    per_image: list[list[_Map]] = [[] for _ in group]
    logits, results = explain_batch(
        loaded, batch, options.methods, options.target.targets, options.method_options,
        should_stop=should_stop,
    )  # fmt: skip
    probs = logits.float().softmax(dim=1).cpu()
    for suffix, by_method in zip(options.target.suffixes(), results, strict=True):
        for method in options.methods:
            result = by_method[method]
            reports.setdefault(method, result.report)
            maps = result.maps.float().cpu()
            targets = result.targets.cpu()
            chosen = probs.gather(1, targets.view(-1, 1))[:, 0]
            extras = _extras(result, options.method_options)
            for i in range(len(group)):
                per_image[i].append(
                    _Map(method, suffix, int(targets[i]), float(chosen[i]), maps[i], extras[i])
                )
    top = probs.topk(min(5, probs.shape[1]), dim=1)
    values, indices = top.values, top.indices
    explained = []
    for i, item in enumerate(group):
        top5 = [
            {"class": int(c), "name": loaded.categories[int(c)], "probability": round(float(p), 6)}
            for p, c in zip(values[i], indices[i], strict=True)
        ]
        explained.append(_Explained(item, top5, per_image[i]))
    return explained


def _extras(result: Explanation, options: MethodOptions) -> list[dict[str, Any]]:
    """Per image, the manifest keys that ``result``'s method (and SmoothGrad) add."""
    rows = get_method(result.method).manifest_keys(result, options)
    if result.smooth:
        for row in rows:
            row.update(smooth=result.smooth, noise=options.noise, seed=options.seed)
    return rows


@dataclass
class Drawing:
    """One image's pictures on their way to a writer, with the rows they get once written."""

    input: InputFile
    task: DrawTask
    rows: list[dict[str, Any]]

    def outcome(self, empty: list[bool]) -> ImageOutcome:
        """The image's outcome once its writer returned ``empty`` (per picture)."""
        pairs = zip(self.rows, empty, strict=True)
        warnings = [f"{row['method']}: {EMPTY_MESSAGE}" for row, blank in pairs if blank]
        return ImageOutcome(self.input, rows=self.rows, warnings=warnings)


def drawing(
    loaded: LoadedModel,
    item: _Explained,
    out_dir: Path,
    options: JobOptions,
    wanted: Collection[Entry],
    fingerprints: dict[str, str],
) -> Drawing:
    """The ``wanted`` pictures of one image, prepared for a writer (see :mod:`.drawing`), and
    their manifest rows."""
    decoded = item.decoded
    file, geometry, source = decoded.input, decoded.geometry, decoded.source
    assert geometry is not None and source is not None
    task = DrawTask(file.path, source.sha256, geometry, out_dir, options.render, options.encoding)
    rows = []
    for entry in item.items:
        method = entry.method
        if (method, entry.suffix) not in wanted:
            continue
        outputs = options.outputs(file.base.as_posix(), method, entry.suffix)
        raw = entry.maps.numpy().astype(np.float32) if options.save_raw else None
        planes = prepare(entry.maps, options.render)
        mark = marker_text(fingerprints[method], source.sha256)
        task.pictures.append(Picture(outputs, planes, raw, mark))
        rows.append(
            {
                "image": file.shown,
                "model": loaded.name,
                "method": method,
                "target": entry.target,
                "target_name": loaded.categories[entry.target],
                "probability": round(entry.probability, 6),
                "top5": item.top5,
                "outputs": outputs,
                "status": "ok",
                "error": None,
                "source": source.to_dict(),
                "fingerprint": fingerprints[method],
                **entry.extra,
            }
        )
    return Drawing(file, task, rows)
