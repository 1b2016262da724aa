"""A local checkpoint in a named architecture: the classifier sized from the checkpoint, another
implementation's names matched by position, a clear error where it does not fit."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .checkpoints import load_state_dict, match_by_position, strip_prefixes
from .zoo import rebuild


def _classifier_key(state: dict[str, torch.Tensor], classes: int) -> str:
    """The state-dict key of the classifier's weight: the last weight with ``classes`` rows."""
    matching = [
        k
        for k, v in state.items()
        if k.endswith("weight") and v.dim() >= 2 and v.shape[0] == classes
    ]
    if not matching:
        raise ModelError("cannot find the classifier layer of this architecture")
    return matching[-1]


def load_local(
    source: str, arch: str, model: nn.Module, path: Path, categories: list[str]
) -> tuple[nn.Module, list[str]]:
    """Load a local state dict into ``arch``, sizing the classifier from the checkpoint. The
    architecture's class names (``categories``) stay where the checkpoint has as many classes
    (a checkpoint of the same task); another count gets ``class i`` (``labels`` names them)."""
    state = strip_prefixes(load_state_dict(path))
    own = model.state_dict()
    key = _classifier_key(own, len(categories))
    if key not in state:
        if len(state) == len(own):  # another implementation's names, same layout
            state = match_by_position(own, state, check_shapes=False)
        else:
            raise ModelError(f"{path}: no {key!r} in the checkpoint; is it a {arch} state dict?")
    classes = int(state[key].shape[0])
    if classes != own[key].shape[0]:
        model = rebuild(source, arch, classes, state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not fit {arch}: {_first_lines(str(exc))}") from None
    if classes == len(categories):
        return model, categories
    return model, [f"class {i}" for i in range(classes)]


def _first_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    more = f" (+{len(lines) - count} more lines)" if len(lines) > count else ""
    return " ".join(lines[:count]) + more
