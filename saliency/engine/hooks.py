"""The hook layer: find the ReLU-family units in an autograd graph and swap a rule in at each.

Every ReLU-family call leaves its own node in the autograd graph (``ReluBackward0``,
``HardtanhBackward0``, ``ThresholdBackward0``), whatever Python spelling made it: ``nn.ReLU``,
``F.relu``, ``torch.relu_``, ``Tensor.relu()``, ``nn.ReLU6``, ``F.hardtanh(x, 0, k)``, in-place or
not, a module reused in several places or not. Hooks on those nodes see exactly the gradient that
arrives at that one call's output, so the rule acts on the unit's own gradient, never on the total
gradient that reaches a pre-activation shared with a skip path. Nothing on the model or in torch is
patched; the hooks live on the graph and are removed when the ``with`` block ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import RuleError
from .report import RuleReport
from .rules import Rule, get_rule

# Activations whose gradient the rules leave alone, by autograd node name.
_KEPT = {
    "SiluBackward0": "SiLU",
    "GeluBackward0": "GELU",
    "HardswishBackward0": "Hardswish",
    "HardsigmoidBackward0": "Hardsigmoid",
    "LeakyReluBackward0": "LeakyReLU",
    "LeakyReluBackward1": "LeakyReLU",
    "EluBackward0": "ELU",
    "EluBackward1": "ELU",
    "CeluBackward0": "CELU",
    "MishBackward0": "Mish",
    "SoftplusBackward0": "Softplus",
    "PreluKernelBackward0": "PReLU",
    "SigmoidBackward0": "Sigmoid",
    "TanhBackward0": "Tanh",
    "ClampBackward1": "clamp",
    "ClampMinBackward0": "clamp",
}

# Nodes that hide a whole sub-graph from autograd: no rule can reach inside them.
_OPAQUE = {
    "CompiledFunctionBackward": "torch.compile",
    "DifferentiableGraphBackward": "TorchScript",
}


def unit_kind(node: Any) -> str | None:
    """Name the ReLU-family unit an autograd node belongs to, or None if it is none."""
    name = type(node).__name__
    if name.startswith("ReluBackward"):
        return "ReLU"
    if name.startswith("HardtanhBackward"):
        low, high = float(node._saved_min_val), float(node._saved_max_val)
        if low == 0.0 and high > 0.0:
            return "ReLU6" if high == 6.0 else f"hardtanh(0, {high:g})"
        return None
    if name.startswith("ThresholdBackward") and float(node._saved_threshold) == 0.0:
        return "threshold(0)"
    return None


def _other_kind(node: Any) -> str | None:
    """Name of an activation that keeps its plain gradient (hardtanh outside the family too)."""
    name = type(node).__name__
    if name in _KEPT:
        return _KEPT[name]
    if name.startswith("HardtanhBackward"):
        return "hardtanh"
    return None


@dataclass
class GraphUnits:
    """What one walk of an autograd graph found."""

    units: list[tuple[Any, str]] = field(default_factory=list)
    kept: Counter[str] = field(default_factory=Counter)
    opaque: Counter[str] = field(default_factory=Counter)
    custom: Counter[str] = field(default_factory=Counter)


def find_units(outputs: torch.Tensor | Iterable[torch.Tensor]) -> GraphUnits:
    """Walk the autograd graph behind ``outputs`` and collect its ReLU-family units."""
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen: set[Any] = set()
    found = GraphUnits()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        name = type(node).__name__
        kind = unit_kind(node)
        if kind is not None:
            found.units.append((node, kind))
        elif (other := _other_kind(node)) is not None:
            found.kept[other] += 1
        elif name in _OPAQUE:
            found.opaque[_OPAQUE[name]] += 1
        elif isinstance(node, torch.autograd.function.BackwardCFunction):
            found.custom[name] += 1
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


class RuleHooks:
    """Apply a rule to every ReLU-family unit behind ``outputs`` for the ``with`` block.

    Use it when you drive autograd yourself. The hooks sit on the graph's nodes, not on the
    model, and are removed on exit; the ``with`` block gets a report of where the rule went.

    Args:
        outputs: The tensors whose graph holds the units (the logits).
        rule: ``gradient``, ``deconvnet`` or ``guided``.
        units: The graph's units, when the caller has found them already.

    Raises:
        ValueError: An unknown rule.
        RuleError: Part of the graph is compiled or scripted, where the rule could not reach
            the units inside.

    Example:
        ```python
        import torch, torchvision
        from saliency import RuleHooks

        model = torchvision.models.vgg11(num_classes=10)
        x = torch.randn(2, 3, 64, 64, requires_grad=True)
        logits = model(x)
        with RuleHooks(logits, "deconvnet") as report:
            logits[:, 3].sum().backward()
        print(report.units)  # {'ReLU': 10}
        ```
    """

    def __init__(
        self,
        outputs: torch.Tensor | Iterable[torch.Tensor],
        rule: str | Rule,
        units: GraphUnits | None = None,
    ) -> None:
        self.rule = get_rule(rule)
        if units is None:
            # The true gradient needs no hook, so its graph is not walked (nothing to report).
            units = find_units(outputs) if self.rule.changes_gradient else GraphUnits()
        self.graph = units
        if self.rule.changes_gradient and self.graph.opaque:
            where = ", ".join(sorted(self.graph.opaque))
            raise RuleError(
                f"{self.rule.name}: part of the model runs as a {where} graph, where the rule "
                "cannot reach the ReLU units inside; explain the eager (uncompiled, unscripted) "
                "model instead"
            )
        self._handles: list[Any] = []
        self.report = RuleReport(
            rule=self.rule.name,
            units=dict(Counter(kind for _, kind in self.graph.units)),
            kept=dict(self.graph.kept),
            custom=dict(self.graph.custom),
        )

    def __enter__(self) -> RuleReport:
        if self.rule.changes_gradient:
            hook = _node_hook(self.rule)
            try:
                for node, _ in self.graph.units:
                    self._handles.append(node.register_hook(hook))
            except BaseException:
                self.remove()
                raise
        return self.report

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this object registered."""
        while self._handles:
            self._handles.pop().remove()


def _node_hook(rule: Rule):
    def hook(grad_inputs: tuple, grad_outputs: tuple) -> tuple | None:
        if grad_inputs[0] is None or grad_outputs[0] is None:
            return None
        return (rule.apply(grad_inputs[0], grad_outputs[0]), *grad_inputs[1:])

    return hook
