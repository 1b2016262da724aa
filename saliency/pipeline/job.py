"""Explaining folders of images: a pipelined run that writes pictures and a manifest.

:func:`run_job` is the story of a run: take the folder, let the ledger (:mod:`.ledger`) say what
is left to do from the manifest, let the executor (:mod:`.executor`) do it while the ledger
records each image, and close the records, keeping only what still holds. A run always ends
promptly, and never half-written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.readers import split_layer
from ..engine.registry import get_method
from ..engine.report import RuleReport
from ..files.inputs import InputFile
from ..files.lock import lock_output
from ..files.shard import Shard
from ..models.loading import LoadedModel
from ..models.tuning import tuned_loaded, tunes
from ..parallel.shards import select
from .executor import Executor
from .fingerprint import model_identity, settings_fingerprint
from .ledger import Ledger, shard_rows
from .options import JobOptions
from .stages import ImageOutcome, output_of

if TYPE_CHECKING:
    import torch


def run_job(
    loaded: LoadedModel,
    files: list[InputFile],
    out_dir: Path,
    options: JobOptions,
    on_image: Callable[[ImageOutcome], None] = lambda outcome: None,
    should_stop: Callable[[], bool] = lambda: False,
    readers: int = 2,
    writers: int = 0,
    missing: Sequence[str] = (),
    grace: float = 3.0,
    shard: Shard | None = None,
    locked: bool = False,
) -> dict[str, RuleReport]:
    """Explain ``files`` and write pictures and manifest rows under ``out_dir``.

    Calls ``on_image`` once per image: first for those with nothing to do or refused, then for
    the rest in input order. Pictures an earlier run made from the same
    input content with the same settings are kept; the rest are redone (all of them with
    ``options.overwrite``), and rows and pictures that no longer hold are removed (see
    :mod:`.resume`). ``missing`` paths get an error row each. Holds ``out_dir``'s lock for the
    run (:class:`~saliency.OutputBusyError` if another run has it), unless the caller holds it
    already (``locked``, see :func:`~saliency.files.lock.lock_output`). When ``should_stop()``
    turns true, returns within about ``grace`` seconds with everything finished so far written.
    ``writers`` processes draw, encode and write (0, the default: threads of this process;
    :func:`default_writers` suits a machine of its own). Like all multiprocessing, writer
    processes import the main module: guard a script's work with ``if __name__ == "__main__"``.
    With ``shard``, ``files`` are the whole run's inputs and this process explains its share
    (:func:`~saliency.parallel.shards.select`) beside the other shards' processes, writing its
    own manifest part (see :mod:`~saliency.files.manifest`); ``missing`` go to shard 0.
    The model runs :func:`~saliency.models.tuning.tuned` as ``options.tuned`` says (None: on
    a CPU, where it is faster); a ``ValueError`` if asked where it cannot be (a detector, LRP).
    Returns, per method, where the rule was applied in the first batch (for one coverage
    message per run).
    """
    methods = tuple(get_method(m).name for m in options.methods)
    resident = loaded.device.type == "cuda" if options.resident is None else options.resident
    resident = resident and loaded.kind.device_pipeline  # a detector's boxes: Pillow's
    options = replace(options, methods=methods, resident=resident)
    tune = tunes(loaded, [get_method(m) for m in methods], options.tuned)
    mine = None
    if shard is not None:
        own = select(files, shard)
        mine = shard_rows(own, files, options, shard)
        files, missing = own, missing if shard.first else ()
    with nullcontext() if locked else lock_output(out_dir, shard):
        identity = model_identity(loaded)
        fingerprints = {m: settings_fingerprint(identity, m, options) for m in methods}
        ledger = Ledger(out_dir, files, options, fingerprints, shard, mine)

        def record(outcome: ImageOutcome) -> None:
            if ledger.record(outcome):
                on_image(outcome)

        if tune and ledger.plan.todo:  # after its identity: the pass changes, not the model
            layer = options.method_options.layer  # a CAM reads its own output: not folded
            loaded = tuned_loaded(loaded, keep=[split_layer(layer)[0]] if layer else [])
        if ledger.plan.todo:  # a reference photo goes the way the photos go
            target = options.target.as_run(partial(output_of, loaded=loaded, options=options))
            options = replace(options, target=target)
        redo = [get_method(m) for m in ledger.plan.methods]
        todo = replace(
            options,
            methods=ledger.plan.methods,
            method_options=options.method_options.only_for(redo),
        )
        executor = Executor(
            loaded, out_dir, todo, ledger.plan.todo, fingerprints, record, ledger.raw_store
        )
        finished = False
        try:
            for outcome in ledger.known(loaded.name, files, missing):
                record(outcome)
            if not executor.run(readers, writers, should_stop, grace):
                ledger.left.set()  # threads still stuck: what they finish now is not taken
            finished = True
        finally:
            ledger.close(finished, writers_killed=executor.abandon())
    return executor.reports


def default_writers(device: torch.device | str = "cpu") -> int:
    """Writer processes by default, at least one: on the CPU, the cores the model's threads
    leave; beside a GPU, every core but two (the run thread and the readers), since the model's
    pass then leaves the cores idle (one writer encoded 75 PNGs/s on an H200 whose model ran
    3,000 images/s)."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if torch.device(device).type == "cpu":
        return max(1, (cores or 1) - torch.get_num_threads())
    return max(1, (cores or 1) - 2)
