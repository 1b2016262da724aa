"""This process's place in a torchrun job: its rank, its device, and the little the processes
share (the input list, progress counters, the summaries at the end).

``torch.distributed`` is initialized (gloo on the CPU; gloo for these objects and nccl beside it
on GPUs) only for that; the work itself needs no communication. Progress goes through the
launcher's key-value store (an atomic ``add`` per image), so no process waits for another until
the end.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import SaliencyError
from .shards import Shard

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


class GroupError(SaliencyError):
    """A process could not join its torchrun job; the message says which rank and why."""


@dataclass
class Group:
    """The process group of a torchrun job, seen from one rank."""

    rank: int
    size: int
    local_rank: int
    store: Any  # torch.distributed.Store: counters shared by the ranks

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.size)

    @property
    def leader(self) -> bool:
        """Rank 0: it shows progress, merges the manifests and prints the summary."""
        return self.rank == 0

    def device(self, asked: torch.device) -> torch.device:
        """The device of this rank: CUDA device ``LOCAL_RANK`` when ``asked`` is CUDA, else
        ``asked``. :class:`GroupError` if the node has too few GPUs."""
        import torch

        if asked.type != "cuda":
            return asked
        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise GroupError(
                f"rank {self.rank}: LOCAL_RANK is {self.local_rank} but this node has "
                f"{count} CUDA device(s); start at most {count} processes per node"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    def share(self, value: T) -> T:
        """Rank 0's ``value``, on every rank."""
        import torch.distributed as dist

        box: list[Any] = [value if self.leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` on rank 0 (in rank order); empty elsewhere. A barrier too."""
        import torch.distributed as dist

        box: list[Any] | None = [None] * self.size if self.leader else None
        dist.gather_object(value, box, dst=0)
        return list(box or [])

    def add(self, counter: str, amount: int = 1) -> int:
        """Add to a counter all ranks share; its new value."""
        return int(self.store.add(counter, amount))

    def count(self, counter: str) -> int:
        return int(self.store.add(counter, 0))

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def join_group(
    environ: Mapping[str, str] | None = None, timeout: timedelta = timedelta(minutes=30)
) -> Group | None:
    """Join the torchrun job this process was started in (None if it was not: no
    ``WORLD_SIZE`` above 1). :class:`GroupError` naming the rank and the reason if it fails."""
    env = os.environ if environ is None else environ
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        if size <= 1:
            return None
        rank, local_rank = int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"]))
        address, port = env["MASTER_ADDR"], int(env["MASTER_PORT"])
    except (KeyError, ValueError) as exc:
        raise GroupError(
            f"WORLD_SIZE is set but the torchrun variables are incomplete or wrong ({exc}); "
            "start with torchrun, or use --shard I/N"
        ) from None
    import torch
    import torch.distributed as dist

    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    try:
        dist.init_process_group(backend, timeout=timeout)
        store = dist.TCPStore(address, port, is_master=False, timeout=timeout)
    except Exception as exc:
        raise GroupError(
            f"rank {rank} of {size} could not join the process group at {address}:{port} "
            f"({backend}): {type(exc).__name__}: {exc}"
        ) from exc
    run = f"{env.get('TORCHELASTIC_RUN_ID', '')}/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    return Group(rank, size, local_rank, dist.PrefixStore(f"saliency/{run}/", store))
