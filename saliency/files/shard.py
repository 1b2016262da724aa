"""A shard of an output folder: one process's share of a run, which names that process's manifest
part and lock file. Which inputs a shard takes is :mod:`saliency.parallel.shards`' business."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based), one process's share of a run."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"a shard is I/N with 0 <= I < N, got {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        """For file names: ``3-of-8``."""
        return f"{self.index}-of-{self.count}"

    @property
    def first(self) -> bool:
        """Shard 0 also takes what belongs to no input (rows of paths given but missing)."""
        return self.index == 0
