"""What a forward pass did, as LRP needs it: every convolution, linear layer, batch norm,
addition of two branches, product with a gate and average pool, whatever module or function
made it, with the values its rule will need.

A :class:`~torch.overrides.TorchFunctionMode` sees every torch call the model makes (``nn``
modules, ``F.*`` functions, ``x + y``, ``out += identity``) without touching the model. Each
call is keyed by the autograd node it left, which is where :mod:`.plan` hooks its rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.graph import GradientEdge, get_gradient_edge
from torch.overrides import TorchFunctionMode

_ADD = {"add", "add_", "__add__", "__radd__", "__iadd__"}
_MUL = {"mul", "mul_", "__mul__", "__rmul__", "__imul__"}
_POOL = {"avg_pool2d", "adaptive_avg_pool2d", "mean"}
_CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}


@dataclass
class Call:
    """One recorded call: its ``kind`` (conv, linear, batch_norm, add, mul, pool), the node its
    result left, and for each tensor operand that needs relevance, the edge it came from."""

    kind: str
    node: Any
    edges: list[GradientEdge | None]
    operands: list[torch.Tensor]  # detached (cloned where the call overwrites them)
    result: torch.Tensor | None = None  # detached copy, for the rules that divide by it
    extra: dict[str, Any] = field(default_factory=dict)


def _edge(t: Any) -> GradientEdge | None:
    if isinstance(t, torch.Tensor) and t.requires_grad:
        return get_gradient_edge(t)
    return None


def _bound(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict[str, Any]:
    found = dict(zip(names, args, strict=False))
    found.update({k: v for k, v in kwargs.items() if k in names})
    return found


class Recorder(TorchFunctionMode):
    """Record the calls of interest made inside the ``with`` block, by the node they left."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[Any, Call] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        before = self._before(func, name, args, kwargs)
        out = func(*args, **kwargs)
        if before is not None and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            before.node = out.grad_fn
            if before.kind in ("add", "pool"):
                before.result = out.detach().clone()
            self.calls[out.grad_fn] = before
        return out

    def _before(self, func: Any, name: str, args: tuple, kwargs: dict) -> Call | None:
        """The call's record before it runs (operands of in-place calls are copied first)."""
        if func is F.conv2d:
            bound = _bound(("input", "weight", "bias", *_CONV_DEFAULTS), args, kwargs)
            conv = {k: bound.get(k, default) for k, default in _CONV_DEFAULTS.items()}
            return self._affine("conv", bound, conv)
        if func is F.linear:
            return self._affine("linear", _bound(("input", "weight", "bias"), args, kwargs), None)
        if func is F.batch_norm:
            names = ("input", "running_mean", "running_var", "weight", "bias", "training")
            bound = _bound((*names, "momentum", "eps"), args, kwargs)
            x = bound["input"]
            return Call("batch_norm", None, [_edge(x)], [x.detach()], extra=bound)
        tensors = [a for a in args[:2] if isinstance(a, torch.Tensor)]
        if name in _ADD and len(tensors) == 2 and all(t.requires_grad for t in tensors):
            if "alpha" in kwargs or len(args) > 2:
                return None  # a scaled sum: left to the gradient (and reported)
            edges = [_edge(t) for t in tensors]
            copies = [t.detach().clone() if name.endswith("_") or "__i" in name else t.detach()
                      for t in tensors]  # fmt: skip
            return Call("add", None, edges, copies)
        if name in _MUL and len(tensors) == 2 and all(t.requires_grad for t in tensors):
            return Call("mul", None, [_edge(t) for t in tensors], [t.detach() for t in tensors])
        if name in _POOL and tensors and tensors[0].requires_grad:
            x = tensors[0]
            return Call("pool", None, [_edge(x)], [x.detach()])
        return None

    @staticmethod
    def _affine(kind: str, bound: dict[str, Any], conv: dict[str, Any] | None) -> Call | None:
        x = bound["input"]
        if not isinstance(x, torch.Tensor) or not x.requires_grad:
            return None
        extra = {"weight": bound["weight"].detach(), "conv": conv}
        bias = bound.get("bias")
        extra["bias"] = bias.detach() if isinstance(bias, torch.Tensor) else None
        return Call(kind, None, [_edge(x)], [x.detach()], extra=extra)
