"""Reading local checkpoints and label files safely: tensors and text only, never code."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import ModelError

StateDict = dict[str, torch.Tensor]


def load_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a state dict from ``path`` without running any code stored in it.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``, which refuses pickles that carry code. Dicts wrapped as
    ``{"state_dict": ...}`` or ``{"model": ...}`` are unwrapped.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            loaded: object = load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"{path}: refused to load: the file holds Python objects other than tensors, and "
            "unpickling them could run code (loaded with weights_only=True). Save a plain "
            "state dict: torch.save(model.state_dict(), path)"
            f" [{str(exc).splitlines()[0]}]"
        ) from None
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise ModelError(f"{path}: cannot read checkpoint: {exc}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded:
        raise ModelError(f"{path}: not a state dict (found {type(loaded).__name__})")
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(loaded):
        raise ModelError(f"{path}: the state dict holds entries that are not tensors")
    return tensors


def strip_prefixes(state: StateDict) -> StateDict:
    """Drop ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) key prefixes."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def match_by_position(own: StateDict, other: StateDict, check_shapes: bool = True) -> StateDict:
    """Rename ``other``'s tensors to ``own``'s keys by position (same layout, other names)."""
    if len(own) != len(other):
        raise ModelError(f"checkpoint has {len(other)} tensors, the model {len(own)}")
    renamed = {}
    for (key, mine), (theirs_key, theirs) in zip(own.items(), other.items(), strict=True):
        if check_shapes and mine.shape != theirs.shape:
            raise ModelError(
                f"tensor {theirs_key} {tuple(theirs.shape)} does not fit {key} {tuple(mine.shape)}"
            )
        renamed[key] = theirs
    return renamed


def load_labels(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a text file (one per line) or a JSON list of strings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read labels: {exc}") from None
    if path.suffix == ".json" or text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ModelError(f"{path}: labels JSON must be a list of strings")
        return names
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ModelError(f"{path}: no labels in the file")
    return names
