"""The steps of a model-randomization sanity check: which layers can be re-initialized, grouped
into steps from the logits down (a stage, a top-level block, or one layer each), and
re-initializing a step's layers from a seed (see :mod:`.sanity`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..choices import GRANULARITIES
from ..engine.passes import predict

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class Step:
    """One randomization step: its name (a stage or layer) and the modules it re-initializes."""

    name: str
    modules: tuple[str, ...]


def _resetter(module: nn.Module) -> Callable[[], None] | None:
    """What re-initializes ``module``'s own parameters: its ``reset_parameters`` (an
    ``nn.MultiheadAttention``'s is private: its in-projection of queries, keys and values)."""
    if not any(True for _ in module.parameters(recurse=False)):
        return None
    if isinstance(module, nn.MultiheadAttention):
        return module._reset_parameters
    found = getattr(module, "reset_parameters", None)
    return found if callable(found) else None


def resettable_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the modules with parameters of their own and ``reset_parameters``, in the order
    they first run in a forward pass on ``inputs[:1]`` (modules that never run come last)."""
    return _run_order(model, inputs)[0]


def _run_order(model: nn.Module, inputs: torch.Tensor) -> tuple[list[str], int]:
    """:func:`resettable_layers`, and how many of them ran (a module whose weights its parent
    uses directly never runs: an attention's output projection)."""
    names = [name for name, module in model.named_modules() if _resetter(module) is not None]
    order: dict[str, int] = {}
    handles = []
    modules = dict(model.named_modules())

    def note(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, output: object) -> None:
            order.setdefault(name, len(order))

        return hook

    for name in names:
        handles.append(modules[name].register_forward_hook(note(name)))
    try:
        with torch.no_grad():
            predict(model, inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sorted(names, key=lambda n: order.get(n, len(order) + names.index(n))), len(order)


def randomization_steps(
    model: nn.Module, inputs: torch.Tensor, granularity: str = "stage"
) -> list[Step]:
    """The steps from the top (the logits) down, at ``granularity`` ``stage`` or ``layer``."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
    layers, ran = _run_order(model, inputs)
    if not layers:
        raise ValueError("the model has no layer with parameters to randomize")
    if granularity == "layer":
        return [Step(name, (name,)) for name in reversed(layers)]
    modules = dict(model.named_modules())
    stages: dict[str, list[str]] = {}
    for name in layers:
        parts = name.split(".")
        top = parts[0]
        key = (
            top
            if len(parts) == 1 or not isinstance(modules[top], _CONTAINERS)
            else ".".join(parts[:2])
        )
        stages.setdefault(key, []).append(name)
    stages = _split_dominant(layers, {"": list(layers)} if len(stages) == 1 else stages)

    def place(members: list[str]) -> int:  # that of its last layer to run
        return max((i for i in map(layers.index, members) if i < ran), default=len(layers))

    ordered = sorted(stages.items(), key=lambda item: place(item[1]))
    return [Step(name, tuple(members)) for name, members in reversed(ordered)]


def _split_dominant(layers: list[str], stages: dict[str, list[str]]) -> dict[str, list[str]]:
    """The stages with any that holds more than half of the layers split into its children,
    until none does: a model wrapped in one module (a Detector's detector) into its parts, a
    detector's backbone into its stages (its heads stay whole), torchvision's ViT ``encoder``
    into its blocks."""
    while True:
        key = next(
            (k for k, m in stages.items() if (not k or 2 * len(m) > len(layers)) and m != [k]),
            None,
        )
        if key is None:
            return stages
        for name in stages.pop(key):
            head = (name[len(key) + 1 :] if key else name).split(".")[0]
            part = key if name == key else (f"{key}.{head}" if key else head)
            stages.setdefault(part, []).append(name)


def randomize(model: nn.Module, step: Step, seed: int) -> None:
    """Re-initialize the step's modules in place with their own ``reset_parameters()``, under
    ``seed``; the global random state is restored afterwards."""
    modules = dict(model.named_modules())
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=sorted({d.index or 0 for d in devices})):
        torch.manual_seed(seed)
        for name in step.modules:
            reset = _resetter(modules[name])
            assert reset is not None  # a step holds resettable layers only
            reset()


