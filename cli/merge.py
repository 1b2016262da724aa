"""``saliency merge``: fold the manifest parts of a sharded run into ``results.jsonl``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import common
from .options import DebugOpt

OutArg = Annotated[Path, typer.Argument(help="The output folder the shards wrote into.")]


def merge(out: OutArg, debug: DebugOpt = False) -> None:
    """Merge a sharded run's manifest parts into OUT/results.jsonl.

    The shards of a job array (or an interrupted torchrun job) leave one part each in OUT;
    this folds them into [b]OUT/results.jsonl[/], one row per image, method and target.

    Refused while a shard or another run still writes there. A lone rerun merges them too.
    """
    from saliency.errors import OutputBusyError
    from saliency.parallel.merging import merge_output

    with common.failures(out, debug, "merge in", usage=(OutputBusyError, FileNotFoundError)):
        merged = merge_output(out)
    common.stderr().print(
        common.escape(
            f"merged {common.count(merged.parts, 'manifest part')}: {merged.images} images, "
            f"{merged.pictures} pictures, {merged.failed} failed in {out / 'results.jsonl'}"
        )
    )
