"""Where this process stands in a run spread over processes: alone, one shard of a job array
(``--shard`` or SLURM's variables), or one rank of a torchrun job; and what differs for each:
who collects the inputs, shows progress, merges the manifests and prints the summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import common

if TYPE_CHECKING:
    from saliency.files.inputs import Inputs
    from saliency.files.manifest import Merged
    from saliency.parallel.group import Group
    from saliency.parallel.shards import Shard


@dataclass
class Placement:
    """This process's share of a run: ``shard`` None for a lone run; ``group`` for torchrun."""

    shard: Shard | None = None
    group: Group | None = None
    _done: int = field(default=0, repr=False)

    @property
    def leader(self) -> bool:
        """Prints the summary: a lone run, each job-array shard, rank 0 of a torchrun job."""
        return self.group is None or self.group.leader

    def collect(self, paths: list[str], recursive: bool, out: Path) -> Inputs:
        """The run's inputs: found by rank 0 and shared, so every rank shards the same list.
        Missing paths are not named here: the run reports each with its error row."""
        if self.group is None:
            return common.collect(paths, recursive, exclude=out, name_missing=False)
        leader = self.group.leader
        found = common.collect(paths, recursive, out, name_missing=False) if leader else None
        shared = self.group.share(found)
        assert shared is not None
        return shared

    def advance(self) -> int:
        """One more image done here; images done so far (by every rank of a group)."""
        if self.group is not None:
            return self.group.add("images")
        self._done += 1
        return self._done

    def wait_for_others(self, show: Callable[[int], None], stop: Callable[[], bool]) -> None:
        """Rank 0 of a group keeps the progress bar going until every rank has finished."""
        if self.group is None:
            return
        self.group.add("finished")
        while self.group.leader and not stop():
            show(self.group.count("images"))
            if self.group.count("finished") >= self.group.size:
                return
            time.sleep(0.2)

    def gather(self, counts: dict[str, float]) -> list[dict[str, float]]:
        """Every process's counts on the leader (waiting for all ranks of a group)."""
        return [counts] if self.group is None else self.group.gather(counts)

    def merge(self, out: Path) -> Merged | None:
        """Merge the manifest parts: rank 0 of a group once all have finished, a job-array
        shard if no other shard still writes (the last to finish does). None if not merged."""
        if self.shard is None or not self.leader:
            return None
        from saliency.errors import OutputBusyError
        from saliency.parallel.merging import merge_output

        try:
            return merge_output(out)
        except OutputBusyError as exc:
            if self.group is not None:  # a rank of this job cannot hold it now: someone else
                common.stderr().print(
                    f"[yellow]warning:[/] manifest parts not merged: {common.escape(str(exc))}"
                )
            return None

    def close(self) -> None:
        """Leave the torchrun group (its last collective, the gather, is done)."""
        if self.group is not None:
            self.group.close()

    def describe(self, processes: int) -> str:
        if self.group is not None:
            return f"{processes} processes: "
        return f"shard {self.shard}: " if self.shard is not None else ""


def placement(shard: str | None, debug: bool) -> Placement:
    """The placement from ``--shard``, torchrun's variables or SLURM's; usage error if bad."""
    import os

    from saliency.parallel.group import GroupError, join_group
    from saliency.parallel.shards import from_environment, parse_shard

    try:
        if shard is not None:
            if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
                common.fail("--shard is for job arrays; under torchrun each rank takes its own")
            return Placement(parse_shard(shard))
        group = join_group()
        if group is not None:
            return Placement(group.shard, group)
        return Placement(from_environment())
    except (ValueError, GroupError) as exc:
        if debug:
            raise
        common.fail(str(exc))
