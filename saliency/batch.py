"""Explaining folders of images: targets by spec, a pipelined run, outputs and a manifest.

Decoding and preprocessing run in reader threads, the model's passes in the caller's thread (one
forward pass per batch serves every method and target), rendering and writing in writer threads.
Both queues are bounded, so memory stays flat however many images there are.
"""

from __future__ import annotations

import difflib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ImageError
from .explain import Explanation, MethodOptions, Stopped, explain_batch
from .hooks import RuleReport
from .images import load_image
from .inputs import InputFile
from .methods import get_method
from .models import LoadedModel
from .outputs import Manifest, write_atomic
from .preprocess import Geometry
from .render import EMPTY_MESSAGE, RenderOptions, draw


@dataclass(frozen=True)
class TargetSpec:
    """Which classes to explain: ``top1``, the ``k`` best (``topk``), or one ``class`` index."""

    kind: str = "top1"
    k: int = 1
    index: int = 0

    def suffixes(self) -> list[str]:
        """The output-name part for each target: none for top1, ``topN`` or the class index."""
        if self.kind == "top1":
            return [""]
        if self.kind == "topk":
            return [f"top{rank}" for rank in range(1, self.k + 1)]
        return [str(self.index)]

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """One LongTensor (B,) per target rank."""
        if self.kind == "class":
            return [torch.full((logits.shape[0],), self.index, device=logits.device)]
        ranked = logits.detach().topk(self.k, dim=1).indices
        return [ranked[:, rank] for rank in range(self.k)]


def parse_target(spec: str, categories: list[str]) -> TargetSpec:
    """``top1``, ``topk:N``, a class index, or a class name (case-insensitive).

    Raises ``ValueError`` for an index out of range, or an unknown or ambiguous name (listing
    close matches).
    """
    classes = len(categories)
    text = spec.strip()
    if text.lower() == "top1":
        return TargetSpec()
    if text.lower().startswith("topk:"):
        count = text[5:]
        if not count.isdigit() or not 1 <= int(count) <= classes:
            raise ValueError(f"topk:N needs N between 1 and {classes}, got {count!r}")
        return TargetSpec("topk", k=int(count))
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < classes:
            raise ValueError(
                f"class index {index} out of range: valid classes are 0..{classes - 1}"
            )
        return TargetSpec("class", index=index)
    lowered = [name.lower() for name in categories]
    hits = [i for i, name in enumerate(lowered) if name == text.lower()]
    if len(hits) == 1:
        return TargetSpec("class", index=hits[0])
    if hits:
        listed = ", ".join(f"{i} ({categories[i]})" for i in hits)
        raise ValueError(f"class name {spec!r} is ambiguous: give the index, one of {listed}")
    close = difflib.get_close_matches(text.lower(), lowered, n=5, cutoff=0.6)
    close += [n for n in lowered if text.lower() in n and n not in close][: 5 - len(close)]
    hint = (
        "; close matches: "
        + ", ".join(f"{categories[lowered.index(n)]!r} ({lowered.index(n)})" for n in close)
        if close
        else ""
    )
    raise ValueError(f"unknown class name {spec!r}{hint}")


@dataclass(frozen=True)
class JobOptions:
    """What to compute and write for each image. ``method_options`` sets Grad-CAM's layer,
    SmoothGrad and Integrated Gradients (its ``batch_size`` is ignored: ``batch_size`` here is
    the number of inputs per pass, also for noisy copies and path points)."""

    methods: tuple[str, ...] = ("guided",)
    target: TargetSpec = TargetSpec()
    fit: str | None = None
    batch_size: int = 16
    render: RenderOptions = field(default_factory=RenderOptions)
    save_raw: bool = False
    overwrite: bool = False
    # zlib level of the PNGs: 1 encodes ~5x faster than Pillow's default 6 (a 1024x768 overlay:
    # 50 ms vs 260 ms); after the model, encoding costs most. See _PNG_STRATEGY for the size.
    png_compression: int = 1
    method_options: MethodOptions = field(default_factory=MethodOptions)

    def label(self, method: str) -> str:
        """The method's part of output names: ``guided``, or ``guided_smooth`` with SmoothGrad."""
        return f"{method}_smooth" if self.method_options.smooth else method


# zlib strategy per style: photo-like pictures (overlay, rgb) gain nothing from LZ matching, and
# run-length encoding makes them as small at level 1 as the default strategy at level 6 (886 vs
# 882 KB for a 1024x768 overlay), and a little faster; flat heatmaps keep the default strategy.
_PNG_STRATEGY = {"overlay": 3, "rgb": 3}  # zlib's Z_RLE


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
class _Decoded:
    """A photo ready for the model; the photo itself is not kept (writers re-read it if needed)."""

    input: InputFile
    tensor: torch.Tensor | None = None
    geometry: Geometry | None = None
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

    decoded: _Decoded
    top5: list[dict[str, Any]]
    items: list[_Map]


def output_names(file: InputFile, options: JobOptions) -> list[str]:
    """Every output path (relative, POSIX) that ``options`` gives ``file``."""
    names = []
    for method in options.methods:
        for suffix in options.target.suffixes():
            stem = f"{file.base.as_posix()}.{options.label(method)}" + (
                f".{suffix}" if suffix else ""
            )
            names.append(stem + ".png")
            if options.save_raw:
                names.append(stem + ".npy")
    if options.save_raw:
        names.append(f"{file.base.as_posix()}.geometry.json")
    return names


def run_job(
    loaded: LoadedModel,
    files: list[InputFile],
    out_dir: Path,
    options: JobOptions,
    on_image: Callable[[ImageOutcome], None] = lambda outcome: None,
    should_stop: Callable[[], bool] = lambda: False,
    readers: int = 2,
    writers: int | None = None,
) -> dict[str, RuleReport]:
    """Explain ``files`` and write pictures and manifest rows under ``out_dir``.

    Calls ``on_image`` once per image, in input order. Images whose outputs an earlier run wrote
    and recorded are not redone (unless ``options.overwrite``). Stops early, with everything
    finished so far written, when ``should_stop()`` turns true. Returns, per method, where the
    rule was applied in the first batch (for one coverage message per run).
    """
    reports: dict[str, RuleReport] = {}
    if writers is None:  # drawing and PNG encoding release the GIL: one thread per spare core
        writers = max(2, min(8, (os.cpu_count() or 2) // 2))
    methods = tuple(get_method(m).name for m in options.methods)
    options = replace(options, methods=methods)
    manifest = Manifest(out_dir, fresh=options.overwrite)
    try:
        todo = []
        for file in files:
            names = output_names(file, options)
            if not options.overwrite and all(
                n in manifest.done and (out_dir / n).exists() for n in names
            ):
                on_image(ImageOutcome(file, done=True))
            else:
                todo.append(file)
        with (
            ThreadPoolExecutor(readers, thread_name_prefix="saliency-read") as read_pool,
            ThreadPoolExecutor(writers, thread_name_prefix="saliency-write") as write_pool,
        ):
            pending: deque[tuple[InputFile, Future[ImageOutcome] | ImageOutcome]] = deque()
            limit = max(2 * options.batch_size, 4)

            def settle(block_until: int) -> None:
                while len(pending) > block_until:
                    file, job = pending.popleft()
                    outcome = job if isinstance(job, ImageOutcome) else _result(loaded, file, job)
                    for row in outcome.rows:
                        manifest.write(row)
                    on_image(outcome)

            decoded = _prefetch(read_pool, todo, loaded, options.fit, limit)
            for batch in _batches(decoded, options.batch_size):
                for item in batch:
                    if item.error is not None:
                        pending.append((item.input, _error_outcome(loaded, item.input, item.error)))
                for group in _same_shape(i for i in batch if i.error is None):
                    try:
                        explained = _explain_group(loaded, group, options, reports, should_stop)
                    except Stopped:  # asked to stop mid-batch: this batch is dropped
                        break
                    except Exception as exc:  # the model failed on this group: report, go on
                        reason = f"model failed: {type(exc).__name__}: {exc}"
                        for item in group:
                            pending.append((item.input, _error_outcome(loaded, item.input, reason)))
                        continue
                    for item in explained:
                        job = write_pool.submit(_write_outputs, loaded, item, out_dir, options)
                        pending.append((item.decoded.input, job))
                settle(limit)
                if should_stop():
                    break
            settle(0)
    finally:
        manifest.close()
    return reports


def _result(loaded: LoadedModel, file: InputFile, job: Future[ImageOutcome]) -> ImageOutcome:
    try:
        return job.result()
    except OSError as exc:  # could not write: this image failed, the run goes on
        reason = f"cannot write output: {exc.strerror or exc}" + (
            f": {exc.filename}" if exc.filename else ""
        )
        return _error_outcome(loaded, file, reason)
    except ImageError as exc:
        return _error_outcome(loaded, file, exc.reason)
    except Exception as exc:  # rendering failed unexpectedly: report it as this image's error
        return _error_outcome(loaded, file, f"{type(exc).__name__}: {exc}")


def _error_outcome(loaded: LoadedModel, file: InputFile, reason: str) -> ImageOutcome:
    row = {"image": file.shown, "model": loaded.name, "top5": [], "outputs": []}
    row.update(status="error", error=reason)
    return ImageOutcome(file, rows=[row], error=reason)


def _decode(file: InputFile, loaded: LoadedModel, fit: str | None) -> _Decoded:
    try:
        image = load_image(file.path, lambda full: loaded.preprocessing.source_size(full, fit))
        tensor, geometry = loaded.preprocess(image, fit)
        return _Decoded(file, tensor, geometry)
    except Exception as exc:  # never let one bad file stop the run
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        return _Decoded(file, error=reason)


def _prefetch(
    pool: ThreadPoolExecutor,
    files: list[InputFile],
    loaded: LoadedModel,
    fit: str | None,
    ahead: int,
) -> Iterator[_Decoded]:
    queue: deque[Future[_Decoded]] = deque()
    it = iter(files)
    for file in it:
        queue.append(pool.submit(_decode, file, loaded, fit))
        if len(queue) >= ahead:
            break
    while queue:
        result = queue.popleft().result()
        nxt = next(it, None)
        if nxt is not None:
            queue.append(pool.submit(_decode, nxt, loaded, fit))
        yield result


def _batches(items: Iterable[_Decoded], size: int) -> Iterator[list[_Decoded]]:
    batch: list[_Decoded] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _same_shape(items: Iterable[_Decoded]) -> list[list[_Decoded]]:
    groups: dict[tuple[int, ...], list[_Decoded]] = {}
    for item in items:
        assert item.tensor is not None
        groups.setdefault(tuple(item.tensor.shape), []).append(item)
    return list(groups.values())


def _explain_group(
    loaded: LoadedModel,
    group: list[_Decoded],
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
    method_options = replace(options.method_options, batch_size=options.batch_size)
    preprocessing = loaded.preprocessing
    logits, results = explain_batch(
        loaded.model,
        batch,
        options.methods,
        options.target.targets,
        method_options,
        (preprocessing.mean, preprocessing.std),
        should_stop,
    )
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
    """Per image, the manifest keys that ``result``'s method adds to the base ones."""
    extra: dict[str, Any] = {}
    if result.layer is not None:
        extra["layer"] = result.layer
    if result.smooth:
        extra.update(smooth=result.smooth, noise=options.noise, seed=options.seed)
    rows = [dict(extra) for _ in range(result.maps.shape[0])]
    if result.completeness is not None and result.score_difference is not None:
        baseline = options.baseline if isinstance(options.baseline, str) else "tensor"
        errors = result.completeness.float().cpu().tolist()
        differences = result.score_difference.float().cpu().tolist()
        for row, error, difference in zip(rows, errors, differences, strict=True):
            row.update(
                baseline=baseline,
                steps=options.steps,
                score_difference=round(difference, 6),
                completeness_error=round(error, 6),
            )
    return rows


def _write_outputs(
    loaded: LoadedModel, item: _Explained, out_dir: Path, options: JobOptions
) -> ImageOutcome:
    decoded = item.decoded
    file, geometry = decoded.input, decoded.geometry
    assert geometry is not None
    outcome = ImageOutcome(file)
    image = None  # the full-size photo, read when an overlay needs it: one per writer at a time
    base = file.base.as_posix()
    if options.save_raw:
        geometry_name = f"{base}.geometry.json"
        text = json.dumps(geometry.to_dict())
        _write_new(out_dir / geometry_name, options.overwrite, partial(Path.write_text, data=text))
    for entry in item.items:
        method, maps = entry.method, entry.maps
        stem = f"{base}.{options.label(method)}" + (f".{entry.suffix}" if entry.suffix else "")
        outputs = [f"{stem}.png"]
        png = out_dir / outputs[0]
        wrote = options.overwrite or not png.exists()
        if wrote:
            if image is None and options.render.style == "overlay":
                image = load_image(file.path)
                if image.size != geometry.image_size:
                    raise ImageError(file.path, "the file changed while it was being explained")
            drawn, empty = draw(image, maps, geometry, options.render)
            encode = partial(
                drawn.save,
                format="PNG",
                compress_level=options.png_compression,
                compress_type=_PNG_STRATEGY.get(options.render.style, -1),
            )
            write_atomic(png, encode)
            if empty:
                outcome.warnings.append(f"{method}: {EMPTY_MESSAGE}")
        if options.save_raw:
            outputs += [f"{stem}.npy", geometry_name]
            array = maps.numpy().astype(np.float32)
            _write_new(out_dir / outputs[1], options.overwrite, partial(_save_npy, array=array))
        outcome.rows.append(
            {
                "image": file.shown,
                "model": loaded.name,
                "method": method,
                "target": entry.target,
                "target_name": loaded.categories[entry.target],
                "probability": round(entry.probability, 6),
                "top5": item.top5,
                "outputs": outputs,
                "status": "ok" if wrote else "skipped",
                "error": None,
                **entry.extra,
            }
        )
    return outcome


def _write_new(path: Path, overwrite: bool, write: Callable[[Path], Any]) -> bool:
    """Write ``path`` atomically unless it exists and ``overwrite`` is off; True if written."""
    if path.exists() and not overwrite:
        return False
    write_atomic(path, write)
    return True


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)
