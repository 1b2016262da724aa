"""Which rule each node of a forward pass's autograd graph gets, and the hooks that apply them.

Relevance travels the graph in place of the gradient. The engine finds, in the graph itself:

* every convolution and linear call, which gets its composite's rule; a batch norm whose input
  is such a call's output (and nothing else reads that output) is folded into it for the rule
  (new tensors: the model is never touched) and then passes relevance through;
* the first layers (those with no convolution or linear call below them), for the composites'
  first-layer rules;
* additions of two branches (residual connections), which split relevance in proportion to
  their inputs' contributions; average pools and means, which do the same; products with a
  broadcast gate (squeeze-excitation), whose signal keeps all the relevance;
* activations, which pass relevance through (ReLU's mask is implied: a dead unit's output is 0,
  so no relevance reaches it). Max pooling's gradient is winner-take-all already, and reshaping,
  concatenation, slicing and padding move relevance as they move gradient.

Everything else keeps its gradient, and is named in the report's warning.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import RuleError
from ..hooks import _OPAQUE, _other_kind, unit_kind
from .record import Call
from .rules import Affine, Rule, stabilized

# Nodes whose gradient moves relevance exactly as LRP would: reshaping, copying, selecting,
# padding, concatenating, max pooling (winner-take-all), and additions of a constant
_EXACT = frozenset(
    [
        "View",
        "UnsafeView",
        "Reshape",
        "Permute",
        "Transpose",
        "T",
        "Cat",
        "Stack",
        "Split",
        "SplitWithSizes",
        "Unbind",
        "Slice",
        "Select",
        "Index",
        "Clone",
        "ConstantPadNd",
        "MaxPool2DWithIndices",
        "MaxPool3DWithIndices",
        "AdaptiveMaxPool2D",
        "AdaptiveMaxPool3D",
        "Unsqueeze",
        "Squeeze",
        "Expand",
        "AsStrided",
        "AccumulateGrad",
        "ToCopy",
        "Alias",
        "Add",
        "Flatten",
        "Narrow",
    ]
)


# What the report calls the nodes it names
_NAMES = {
    "Addmm": "linear layer on a multi-dimensional input",
    "Mm": "linear layer on a multi-dimensional input",
    "Bmm": "batched matrix product",
    "Mul": "product with a constant",
    "Div": "division",
    "Sub": "subtraction",
    "NativeLayerNorm": "layer norm",
    "NativeGroupNorm": "group norm",
    "Mean": "mean",
}


def _node_name(node: Any) -> str:
    name = re.sub(r"Backward\d*$", "", type(node).__name__)
    return _NAMES.get(name, name)


@dataclass(frozen=True)
class RuleSet:
    """The rules of a composite: for convolutions, for linear layers, and for the first layer
    (``first``, None: as the others; ``first_dense``: a linear first layer takes it too).
    Without ``bias``, the rules leave every layer's bias out (zennit's ``zero_params=["bias"]``),
    so no relevance is absorbed there."""

    conv: Rule
    dense: Rule
    first: Rule | None = None
    first_dense: bool = True
    bias: bool = True

    def rule(self, kind: str, first: bool) -> Rule:
        if first and self.first is not None and (kind == "conv" or self.first_dense):
            return self.first
        return self.conv if kind == "conv" else self.dense


@dataclass
class Coverage:
    """What the plan found: layers with a rule, folded and unfolded batch norms, activations
    passed through that have no rule of their own, and nodes left to their gradient."""

    layers: Counter[str] = field(default_factory=Counter)
    folded: int = 0
    unfolded: int = 0
    passed: Counter[str] = field(default_factory=Counter)
    merges: Counter[str] = field(default_factory=Counter)
    gradient: Counter[str] = field(default_factory=Counter)

    def warning(self, name: str) -> str | None:
        """One line naming what had no rule and what was done, or None when every layer had
        one."""
        if not self.layers:
            return f"{name}: no convolution or linear layer in the graph, so no relevance rule ran"
        tails = [
            f"{n} {kind} unit{'s' if n != 1 else ''} passed relevance through unchanged "
            "(no LRP rule of its own)"
            for kind, n in sorted(self.passed.items())
        ]
        if self.unfolded:
            tails.append(
                f"{self.unfolded} batch norm{'s' if self.unfolded != 1 else ''} not folded into a "
                "convolution or linear layer (none right before, or batch statistics) passed "
                "relevance through unchanged"
            )
        if self.gradient:
            tails.append(
                "no rule for "
                + ", ".join(f"{n} {kind}" for kind, n in sorted(self.gradient.items()))
                + ": backpropagated as the gradient"
            )
        if not tails:
            return None
        return f"{name}: " + "; ".join(tails)


class Plan:
    """The hooks for one forward pass's graph (behind ``logits``), from the calls a
    :class:`~.record.Recorder` saw and a :class:`RuleSet`."""

    def __init__(self, logits: torch.Tensor, calls: dict[Any, Call], rules: RuleSet) -> None:
        self.calls = calls
        self.rules = rules
        self.coverage = Coverage()
        self.nodes, self.readers = _walk(logits)
        self.inside = set(self.nodes)  # membership in O(1): calls outside the graph are skipped
        opaque = sorted(
            {_OPAQUE[type(n).__name__] for n in self.nodes if type(n).__name__ in _OPAQUE}
        )
        if opaque:
            raise RuleError(
                f"part of the model runs as a {', '.join(opaque)} graph, where LRP's rules cannot "
                "reach the layers inside; explain the eager (uncompiled, unscripted) model instead"
            )
        self.layers = self._layers()
        self._hooks: list[tuple[Any, str, Callable[..., Any]]] = []
        for node in self.nodes:
            self._plan(node)

    def _layers(self) -> dict[Any, Affine]:
        """The affine calls by node, with batch norms folded in where one follows alone."""
        layers: dict[Any, Affine] = {}
        for node, call in self.calls.items():
            if call.kind in ("conv", "linear") and node in self.inside:
                if _slot(node, call.edges[0]) is None:
                    continue  # a linear layer on an N-d input: its node is a reshape
                x = call.operands[0]
                pad = _explicit_pad(call.edges[0])
                layers[node] = Affine(
                    x, call.extra["weight"], call.extra["bias"], call.extra["conv"], pad
                )
        for node, call in self.calls.items():
            if call.kind != "batch_norm" or node not in self.inside:
                continue
            below = call.edges[0].node if call.edges[0] is not None else None
            if below in layers and self.readers[below] == 1 and _foldable(call):
                _fold(layers[below], call.extra)
                call.extra["folded"] = True
        if not self.rules.bias:
            for layer in layers.values():
                layer.left_out, layer.bias = layer.bias, None
        return layers

    def _plan(self, node: Any) -> None:
        call = self.calls.get(node)
        if node in self.layers:
            layer, kind = self.layers[node], self.calls[node].kind
            first = self._first(node)
            self.coverage.layers["convolution" if kind == "conv" else "linear layer"] += 1
            self._hook(node, "post", _layer_hook(layer, self.rules.rule(kind, first), node, call))
        elif call is not None and call.kind == "batch_norm":
            if call.extra.get("folded"):
                self.coverage.folded += 1
            else:
                self.coverage.unfolded += 1
            self._hook(node, "post", _pass_hook(_slot(node, call.edges[0])))
        elif call is not None and call.kind == "add":
            self.coverage.merges["addition"] += 1
            self._hook(node, "post", _add_hook(node, call))
        elif call is not None and call.kind == "pool":
            self.coverage.merges["average"] += 1
            result = call.result
            assert result is not None
            self._hook(node, "pre", lambda grads: (grads[0] / stabilized(result), *grads[1:]))
            self._hook(
                node, "post", _times_input_hook(_slot(node, call.edges[0]), call.operands[0])
            )
        elif call is not None and call.kind == "mul" and _gated(call):
            self.coverage.merges["gate"] += 1
            self._hook(node, "post", _gate_hook(node, call))
        elif unit_kind(node) is not None:
            self._hook(node, "post", _pass_hook(0))
        elif (other := _other_kind(node)) is not None:
            self.coverage.passed[other] += 1
            self._hook(node, "post", _pass_hook(0))
        elif isinstance(node, torch.autograd.function.BackwardCFunction):
            self.coverage.gradient[f"custom function {type(node).__name__}"] += 1
        elif re.sub(r"Backward\d*$", "", type(node).__name__) not in _EXACT:
            self.coverage.gradient[_node_name(node)] += 1

    def _first(self, node: Any) -> bool:
        """Whether no convolution or linear call lies below this one's input."""
        start = self.calls[node].edges[0]
        stack: list[Any] = [start.node] if start is not None else []
        seen: set[Any] = set()
        while stack:
            below = stack.pop()
            if below is None or below in seen:
                continue
            if below in self.layers:
                return False
            seen.add(below)
            stack.extend(n for n, _ in below.next_functions)
        return True

    def _hook(self, node: Any, when: str, hook: Callable[..., Any]) -> None:
        self._hooks.append((node, when, hook))

    @contextmanager
    def hooks(self) -> Iterator[Coverage]:
        """The hooks on the graph for the block; removed on exit, also on an error."""
        handles = []
        try:
            for node, when, hook in self._hooks:
                register = node.register_prehook if when == "pre" else node.register_hook
                handles.append(register(hook))
            yield self.coverage
        finally:
            for handle in handles:
                handle.remove()


def _walk(logits: torch.Tensor) -> tuple[list[Any], Counter[Any]]:
    """The graph's nodes behind ``logits``, and how many edges read each one."""
    stack = [logits.grad_fn] if logits.grad_fn is not None else []
    nodes: list[Any] = []
    seen: set[Any] = set()
    readers: Counter[Any] = Counter()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        nodes.append(node)
        for below, _ in node.next_functions:
            if below is not None:
                readers[below] += 1
                stack.append(below)
    return nodes, readers


def _slot(node: Any, edge: Any) -> int | None:
    """The position among ``node``'s inputs of the operand that came along ``edge``."""
    if edge is None:
        return None
    for n, (below, number) in enumerate(node.next_functions):
        if below is edge.node and number == edge.output_nr:
            return n
    return None


def _explicit_pad(edge: Any) -> tuple[int, ...] | None:
    """The zero padding of a layer input made by ``F.pad`` just before the call, if any."""
    if edge is None or type(edge.node).__name__ != "ConstantPadNdBackward0":
        return None
    return tuple(int(p) for p in edge.node._saved_pad)


def _foldable(call: Call) -> bool:
    bound = call.extra
    return not bound.get("training", False) and bound.get("running_var") is not None


def _fold(layer: Affine, bound: dict[str, Any]) -> None:
    """Fold an eval-mode batch norm into the layer below it (new tensors, as zennit's
    ``MergeBatchNorm`` computes them)."""
    var, mean = bound["running_var"].detach(), bound["running_mean"].detach()
    weight, bias = bound.get("weight"), bound.get("bias")
    scale = (var + bound.get("eps", 1e-5)) ** 0.5
    scale = (weight.detach() if weight is not None else torch.ones_like(var)) / scale
    shift = bias.detach() if bias is not None else torch.zeros_like(var)
    index = (slice(None), *(None,) * (layer.weight.dim() - 1))
    old_bias = layer.bias if layer.bias is not None else torch.zeros_like(mean)
    layer.weight = layer.weight * scale[index]
    layer.bias = (old_bias - mean) * scale + shift


def _gated(call: Call) -> bool:
    """A product of a signal with a broadcast gate (fewer elements), as in squeeze-excitation."""
    a, b = call.operands
    return a.numel() != b.numel()


def _layer_hook(layer: Affine, rule: Rule, node: Any, call: Any) -> Callable[..., Any]:
    slot = _slot(node, call.edges[0])
    assert slot is not None  # a layer whose input is not among its node's is left out

    def hook(grad_inputs: tuple, grad_outputs: tuple) -> tuple:
        found = list(grad_inputs)
        found[slot] = rule(layer, grad_outputs[0])
        return tuple(found)

    return hook


def _pass_hook(slot: int | None) -> Callable[..., Any]:
    def hook(grad_inputs: tuple, grad_outputs: tuple) -> tuple | None:
        if slot is None or grad_inputs[slot] is None or grad_outputs[0] is None:
            return None
        found = list(grad_inputs)
        found[slot] = grad_outputs[0].reshape(grad_inputs[slot].shape)
        return tuple(found)

    return hook


def _add_hook(node: Any, call: Call) -> Callable[..., Any]:
    slots = [_slot(node, edge) for edge in call.edges]
    result = call.result
    assert result is not None

    def hook(grad_inputs: tuple, grad_outputs: tuple) -> tuple:
        s = grad_outputs[0] / stabilized(result)
        found = list(grad_inputs)
        for slot, operand in zip(slots, call.operands, strict=True):
            if slot is not None and found[slot] is not None:
                found[slot] = (operand * s).sum_to_size(operand.shape)
        return tuple(found)

    return hook


def _times_input_hook(slot: int | None, x: torch.Tensor) -> Callable[..., Any]:
    def hook(grad_inputs: tuple, grad_outputs: tuple) -> tuple | None:
        if slot is None or grad_inputs[slot] is None:
            return None
        found = list(grad_inputs)
        found[slot] = grad_inputs[slot] * x
        return tuple(found)

    return hook


def _gate_hook(node: Any, call: Call) -> Callable[..., Any]:
    slots = [_slot(node, edge) for edge in call.edges]
    signal = 0 if call.operands[0].numel() > call.operands[1].numel() else 1

    def hook(grad_inputs: tuple, grad_outputs: tuple) -> tuple:
        found = list(grad_inputs)
        for n, slot in enumerate(slots):
            if slot is None or found[slot] is None:
                continue
            shape = call.operands[n].shape
            found[slot] = (
                grad_outputs[0].sum_to_size(shape) if n == signal else torch.zeros_like(found[slot])
            )
        return tuple(found)

    return hook
