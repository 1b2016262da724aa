"""Which classes to explain: a target given as None, an int, a sequence or a tensor, as one
class index per sample (what a folder run explains is its kind's plan: see
:mod:`saliency.tasks`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .objectives import classifier_output

TargetLike = int | Sequence[int] | torch.Tensor | None


def resolve_targets(target: TargetLike, logits: torch.Tensor) -> torch.Tensor:
    """Turn ``target`` into one class index per sample, a LongTensor (B,) on the logits' device.

    ``None`` means each sample's top-1 class; an int one class for all; a sequence or tensor one
    class per sample. Raises ``ValueError`` for a wrong length or an index out of range.
    """
    targets, check = targets_and_check(target, logits)
    check()
    return targets


def targets_and_check(
    target: TargetLike, logits: torch.Tensor
) -> tuple[torch.Tensor, Callable[[], None]]:
    """The targets, and the range check to run. For a tensor already on a GPU the check is left to
    the caller to run once the backward pass is queued (checking at once would stall the GPU),
    and the indices are clamped meanwhile so that a bad one cannot fault the device."""
    batch, classes = classifier_output(logits).shape
    if target is None:
        return logits.detach().argmax(dim=1), lambda: None
    if isinstance(target, bool):
        raise ValueError("target must be None, an int or a sequence of ints, not a bool")
    if isinstance(target, int):
        targets = torch.full((batch,), target, dtype=torch.long)
    else:
        if isinstance(target, torch.Tensor):
            dtype = target.dtype
            if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
                raise ValueError(f"target tensor must hold integers, not {target.dtype}")
            targets = target.detach().reshape(-1).long()
        else:
            values = list(target)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ValueError("target must be None, an int or a sequence of ints")
            targets = torch.tensor(values, dtype=torch.long)
        if targets.numel() != batch:
            raise ValueError(f"target has {targets.numel()} entries for a batch of {batch}")

    def check(targets: torch.Tensor = targets) -> None:
        bad = (targets < 0) | (targets >= classes)
        if bool(bad.any()):
            raise ValueError(
                f"target {int(targets[bad][0])} is out of range: valid classes are 0..{classes - 1}"
            )

    if targets.device.type == "cpu":
        check()
        return targets.to(logits.device), lambda: None
    return targets.to(logits.device).clamp(0, classes - 1), check
