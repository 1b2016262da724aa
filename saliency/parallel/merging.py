"""Merging a sharded run's manifest parts into ``results.jsonl``, once no shard is writing."""

from __future__ import annotations

from pathlib import Path

from ..files.lock import lock_output
from ..files.manifest import Merged, merge_parts


def merge_output(out_dir: Path) -> Merged:
    """Fold the manifest parts in ``out_dir`` into ``results.jsonl`` and report its rows.
    :class:`~saliency.OutputBusyError` (naming them) while shards or another run write there."""
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir} is not a folder")
    with lock_output(out_dir, merging=True):
        return merge_parts(out_dir)
