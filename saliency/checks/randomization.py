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


def resettable_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the modules with parameters of their own and ``reset_parameters``, in the order
    they first run in a forward pass on ``inputs[:1]`` (modules that never run come last)."""
    names = [
        name
        for name, module in model.named_modules()
        if callable(getattr(module, "reset_parameters", None))
        and any(True for _ in module.parameters(recurse=False))
    ]
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
    return sorted(names, key=lambda n: order.get(n, len(order) + names.index(n)))


def randomization_steps(
    model: nn.Module, inputs: torch.Tensor, granularity: str = "stage"
) -> list[Step]:
    """The steps from the top (the logits) down, at ``granularity`` ``stage`` or ``layer``."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; valid: {', '.join(GRANULARITIES)}")
    layers = resettable_layers(model, inputs)
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
    if len(stages) == 1:  # one module around everything (a Detector's detector): its parts
        stages = _split_dominant(layers)
    # a stage's place is that of its last layer to run
    ordered = sorted(stages.items(), key=lambda item: layers.index(item[1][-1]))
    return [Step(name, tuple(members)) for name, members in reversed(ordered)]


def _split_dominant(layers: list[str]) -> dict[str, list[str]]:
    """Stages for a model wrapped in one module: from the wrapped model's children down, a
    module that holds more than half of the layers is split into its own children (a
    detector's backbone into its stages; its heads stay whole)."""
    stages: dict[str, list[str]] = {"": list(layers)}
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
            modules[name].reset_parameters()


