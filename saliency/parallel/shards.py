"""Which inputs a process explains: deterministic, balanced shards of the input list.

Inputs are ordered by a SHA-256 of their output base (the path relative to the root they were
found under, as the outputs mirror it), and dealt round-robin: every shard gets the same count
to within one, the same inputs give the same shards in every run and process (never Python's
salted ``hash``), and a shard mixes the folder's parts evenly. Which pictures a shard still has
to make is decided by the resume's fingerprints, not by the shard, so a rerun with another
count completes exactly what is missing.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

from ..files.inputs import InputFile
from ..files.shard import Shard

T = TypeVar("T")


def parse_shard(text: str) -> Shard:
    """``"I/N"`` as a :class:`Shard`; ``ValueError`` naming the form otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"--shard takes I/N (e.g. 0/4), got {text!r}")
    return Shard(int(match[1]), int(match[2]))


def shard_key(file: InputFile) -> str:
    """What places an input: its output base, e.g. ``sub/cat`` (relative to its root)."""
    return file.base.as_posix()


def _order(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def assign(keys: Sequence[str], count: int) -> list[int]:
    """The shard of each key: keys sorted by their SHA-256 (ties by the key), dealt in turn."""
    order = sorted(range(len(keys)), key=lambda i: (_order(keys[i]), keys[i]))
    shards = [0] * len(keys)
    for position, i in enumerate(order):
        shards[i] = position % count
    return shards


def select(files: Sequence[InputFile], shard: Shard) -> list[InputFile]:
    """The inputs of ``shard``, in their given order."""
    shards = assign([shard_key(f) for f in files], shard.count)
    return [f for f, s in zip(files, shards, strict=True) if s == shard.index]


def from_environment(environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard a launcher set: torchrun's ``RANK``/``WORLD_SIZE`` first, then a SLURM job
    array's ``SLURM_ARRAY_TASK_ID`` (less ``SLURM_ARRAY_TASK_MIN``) of ``SLURM_ARRAY_TASK_COUNT``.
    None for a lone process. ``ValueError`` for values that do not make a shard."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env and "RANK" in env:
        count, index = _number(env, "WORLD_SIZE"), _number(env, "RANK")
        return Shard(index, count) if count > 1 else None
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        first = _number(env, "SLURM_ARRAY_TASK_MIN") if "SLURM_ARRAY_TASK_MIN" in env else 0
        index = _number(env, "SLURM_ARRAY_TASK_ID") - first
        count = _number(env, "SLURM_ARRAY_TASK_COUNT")
        try:
            shard = Shard(index, count)
        except ValueError:
            raise ValueError(
                f"SLURM_ARRAY_TASK_ID {env['SLURM_ARRAY_TASK_ID']} (less SLURM_ARRAY_TASK_MIN "
                f"{first}) is not below SLURM_ARRAY_TASK_COUNT {count}: use a contiguous array "
                "(--array=0-N) or pass --shard I/N"
            ) from None
        return shard if count > 1 else None
    return None


def _number(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"{name}={env[name]!r} is not a whole number") from None
