"""Batch norms folded into the convolutions before them, where the model's code proves the pair.

An eval-mode batch norm right after a convolution is a per-channel affine map of that
convolution's output, so it can live in the convolution's weights and bias (``W * s``,
``b * s + t``): the pass then skips a full read and write of each activation (EfficientNet-Lite0
on this CPU, ``benchmarks/folding.py``: 75 ms a pass of 4 copies at 336x224 with the norms kept,
52 ms folded). It is only right where nothing else reads the convolution's own output, which
the module tree cannot tell; so a pair is folded only where the code says so:

* in an ``nn.Sequential`` (its own forward), one child after the other;
* in a module whose class's code (read with ``ast``) uses the convolution only in calls
  ``v = self.conv(...)`` followed at once by ``v = self.norm(v)``, or ``self.norm(self.conv(...))``,
  or in a list of layers ``[self.conv, self.norm]``, apart from reading its shape
  (``self.conv.out_channels``). Any other reference (its weight read, the module passed on)
  leaves the pair alone.

The norm's activation (and dropout) stays, in a :class:`FoldedNorm` under the norm's name, so the
rule engine finds the same units and a CAM of that name reads the same output. The convolution
is marked (:func:`folded_into`): its output is now the norm's, and a CAM asked to read it is
refused, not silently given another layer's map.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Collection

import torch
from timm.layers import Conv2dSame
from timm.layers.norm_act import FrozenBatchNormAct2d
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from ..engine.layers import FOLDED, folded_into

__all__ = ["FoldedNorm", "fold_batch_norms", "folded_into"]

# exactly these: a subclass may transform its weight in its forward (weight standardization)
_CONVS = (nn.Conv2d, Conv2dSame)
_NORMS = (FrozenBatchNorm2d, FrozenBatchNormAct2d)
_SHAPES = frozenset({"in_channels", "out_channels", "kernel_size", "stride", "padding", "groups"})
_HARMLESS = ""  # a reference that reads no output (a shape)


class FoldedNorm(nn.Module):
    """What stays of a batch norm folded into the convolution before it: its dropout and
    activation (identities for a plain batch norm)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.drop = getattr(norm, "drop", None) or nn.Identity()
        self.act = getattr(norm, "act", None) or nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(x))


def fold_batch_norms(model: nn.Module, keep: Collection[str] = ()) -> list[tuple[str, str]]:
    """Fold, in place, each frozen batch norm of ``model`` into the convolution whose output
    only it reads (see the module's doc); ``keep`` names modules whose own output is read
    elsewhere (a CAM layer), never folded into. Returns the (convolution, norm) names folded."""
    done: list[tuple[str, str]] = []
    for prefix, parent in list(model.named_modules()):
        children = dict(parent.named_children())
        for conv_name, norm_name in _pairs(parent, children):
            conv, norm = children.get(conv_name), children.get(norm_name)
            full = f"{prefix}.{conv_name}" if prefix else conv_name
            if type(conv) not in _CONVS or type(norm) not in _NORMS or full in keep:
                continue
            assert isinstance(conv, nn.Conv2d) and norm is not None
            if folded_into(conv) is not None or norm.weight.shape[0] != conv.out_channels:
                continue
            _fold(conv, norm)
            norm_full = f"{prefix}.{norm_name}" if prefix else norm_name
            setattr(conv, FOLDED, norm_full)
            setattr(parent, norm_name, FoldedNorm(norm))
            done.append((full, norm_full))
    return done


@torch.no_grad()
def _fold(conv: nn.Conv2d, norm: FrozenBatchNorm2d | FrozenBatchNormAct2d) -> None:
    weight, bias, mean, var = (
        torch.as_tensor(getattr(norm, name))
        for name in ("weight", "bias", "running_mean", "running_var")
    )
    scale = weight * (var + float(norm.eps)).rsqrt()
    shift = bias - mean * scale
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(shift.to(conv.weight.dtype), conv.weight.requires_grad)
    else:
        conv.bias.mul_(scale).add_(shift)


def _pairs(parent: nn.Module, children: dict[str, nn.Module]) -> list[tuple[str, str]]:
    """(convolution, norm) child names whose pairing ``parent``'s forward makes certain."""
    if type(parent).forward is nn.Sequential.forward:
        names = list(children)
        return list(zip(names, names[1:], strict=False))
    cls = type(parent)
    if cls not in _READ:
        _READ[cls] = _coded_pairs(cls)
    return list(_READ[cls])


_READ: dict[type, tuple[tuple[str, str], ...]] = {}  # class -> its pairs, read once


def _coded_pairs(cls: type) -> tuple[tuple[str, str], ...]:
    """Pairs ``(a, b)`` such that ``cls``'s code (its classes up to torch's own) uses
    ``self.a`` only in calls whose result ``self.b`` alone reads: ``v = self.a(...)`` followed
    at once by ``v = self.b(v)``, or ``self.b(self.a(...))``; none where the code cannot be read."""
    readers: dict[str, set[str | None]] = {}
    for klass in cls.__mro__:
        if klass.__module__.startswith("torch.nn") or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            return ()
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            name = _self_attribute(node)
            if name is not None and not isinstance(node.ctx, ast.Store):  # type: ignore[attr-defined]
                readers.setdefault(name, set()).add(_reader(node, parents))
    pairs = []
    for name, found in readers.items():
        found.discard(_HARMLESS)
        if len(found) == 1 and (reader := next(iter(found))) is not None:
            pairs.append((name, reader))
    return tuple(pairs)


def _self_attribute(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr if node.value.id == "self" else None
    return None


def _reader(attribute: ast.AST, parents: dict[ast.AST, ast.AST]) -> str | None:
    """The ``b`` of ``self.b`` that alone reads the result of the call of ``attribute``
    (``self.a``), or None: not called, or its result may be read by anything else."""
    call = parents.get(attribute)
    if isinstance(call, ast.Attribute) and call.attr in _SHAPES:
        return _HARMLESS  # self.a.out_channels: its shape, read
    if isinstance(call, ast.List | ast.Tuple):  # [self.a, self.b]: a sequence of layers
        index = call.elts.index(attribute)  # type: ignore[arg-type]
        later = call.elts[index + 1] if index + 1 < len(call.elts) else None
        return _self_attribute(later) if later is not None else None
    if not (isinstance(call, ast.Call) and call.func is attribute):
        return None  # referred to, not called: its weights may be read another way
    holder = parents.get(call)
    if isinstance(holder, ast.Call) and _alone(holder, call):  # self.b(self.a(...))
        return _self_attribute(holder.func)
    if not (isinstance(holder, ast.Assign) and len(holder.targets) == 1):
        return None
    target = holder.targets[0]
    owner = parents.get(holder)
    body = next(
        (b for f in ("body", "orelse", "finalbody") if holder in (b := getattr(owner, f, []))),
        None,
    )
    if not isinstance(target, ast.Name) or body is None or body[-1] is holder:
        return None
    after = body[body.index(holder) + 1]  # v = self.b(v), v overwritten: nothing else reads it
    if not (isinstance(after, ast.Assign) and len(after.targets) == 1):
        return None
    again, value = after.targets[0], after.value
    if not (isinstance(again, ast.Name) and again.id == target.id and isinstance(value, ast.Call)):
        return None
    only = value.args[0] if _alone(value, None) else None
    if isinstance(only, ast.Name) and only.id == target.id:
        return _self_attribute(value.func)
    return None


def _alone(call: ast.Call, argument: ast.AST | None) -> bool:
    """Whether ``call`` is ``self.b(argument)``: one positional argument (``argument`` if
    given), no keywords."""
    if _self_attribute(call.func) is None or call.keywords or len(call.args) != 1:
        return False
    return argument is None or call.args[0] is argument
