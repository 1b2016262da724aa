"""Explaining folders of images: a pipelined run that writes pictures and a manifest.

Decoding and preprocessing run in reader threads, the model's passes in the caller's thread (one
forward pass per batch serves every method and target), rendering and writing in writer threads.
Both queues are bounded, so memory stays flat however many images there are.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ..engine.hooks import RuleReport
from ..engine.passes import Stopped
from ..engine.registry import get_method
from ..files.inputs import InputFile
from ..files.outputs import Manifest
from ..models.loading import LoadedModel
from .options import JobOptions
from .stages import (
    ImageOutcome,
    batches,
    error_outcome,
    error_row,
    explain_group,
    output_names,
    prefetch,
    result_of,
    same_shape,
    write_outputs,
)


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
                    outcome = job if isinstance(job, ImageOutcome) else result_of(loaded, file, job)
                    for row in outcome.rows:
                        manifest.write(row)
                    on_image(outcome)

            decoded = prefetch(read_pool, todo, loaded, options.fit, limit)
            for batch in batches(decoded, options.batch_size):
                for item in batch:
                    if item.error is not None:
                        pending.append((item.input, error_outcome(loaded, item.input, item.error)))
                for group in same_shape(i for i in batch if i.error is None):
                    try:
                        explained = explain_group(loaded, group, options, reports, should_stop)
                    except Stopped:  # asked to stop mid-batch: this batch is dropped
                        break
                    except Exception as exc:  # the model failed on this group: report, go on
                        reason = f"model failed: {type(exc).__name__}: {exc}"
                        for item in group:
                            pending.append((item.input, error_outcome(loaded, item.input, reason)))
                        continue
                    for done in explained:
                        job = write_pool.submit(write_outputs, loaded, done, out_dir, options)
                        pending.append((done.decoded.input, job))
                settle(limit)
                if should_stop():
                    break
            settle(0)
    finally:
        manifest.close()
    return reports


def record_missing(out_dir: Path, model: str, missing: list[str]) -> None:
    """An error row in the manifest for each named path that does not exist (written after a
    run, so that ``overwrite`` starting the manifest afresh does not erase them)."""
    if not missing:
        return
    manifest = Manifest(out_dir)
    try:
        for path in missing:
            manifest.write(error_row(path, model, "no such file or folder"))
    finally:
        manifest.close()
