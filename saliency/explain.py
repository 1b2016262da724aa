"""``explain()``: one forward and one backward pass under a rule, for a whole batch."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .errors import RuleCoverageWarning
from .hooks import GraphUnits, RuleHooks, RuleReport, find_units
from .rules import Rule, get_rule
from .state import check_eager, explanation_mode

Target = int | Sequence[int] | torch.Tensor | None


@dataclass
class Explanation:
    """Saliency maps for a batch.

    ``maps`` has the inputs' shape, dtype and device: d score[target] / d input under the method's
    rule, with no post-processing. ``targets`` holds the explained class of each sample,
    ``logits`` the model's (detached) output, ``report`` where the rule was applied (empty for
    ``gradient``, which hooks nothing).
    """

    maps: torch.Tensor
    targets: torch.Tensor
    logits: torch.Tensor
    method: str
    report: RuleReport

    @property
    def probabilities(self) -> torch.Tensor:
        """Softmax of the logits, (B, K)."""
        return self.logits.softmax(dim=1)


def resolve_targets(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Turn ``target`` into one class index per sample, a LongTensor (B,) on the logits' device.

    ``None`` means each sample's top-1 class; an int one class for all; a sequence or tensor one
    class per sample. Raises ``ValueError`` for a wrong length or an index out of range.
    """
    targets, check = _targets(target, logits)
    check()
    return targets


def _targets(target: Target, logits: torch.Tensor) -> tuple[torch.Tensor, Callable[[], None]]:
    """The targets, and the range check to run. For a tensor already on a GPU the check is left to
    the caller to run once the backward pass is queued (checking at once would stall the GPU),
    and the indices are clamped meanwhile so that a bad one cannot fault the device."""
    batch, classes = logits.shape
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


class ForwardPass:
    """The graph of one forward pass, reusable for several rules and targets.

    Each :meth:`explain` call is one backward pass over the input only.
    """

    def __init__(self, inputs: torch.Tensor, logits: torch.Tensor) -> None:
        self.inputs = inputs
        self.logits = logits
        self._units: GraphUnits | None = None

    @property
    def units(self) -> GraphUnits:
        """The ReLU-family units of the graph, found once."""
        if self._units is None:
            self._units = find_units(self.logits)
        return self._units

    def explain(
        self, method: str | Rule, targets: torch.Tensor, *, retain_graph: bool = True
    ) -> Explanation:
        """Maps for ``targets`` (LongTensor (B,)) under ``method``; keep the graph unless told."""
        rule = get_rule(method)
        units = self.units if rule.changes_gradient else GraphUnits()
        with RuleHooks(self.logits, rule, units) as report:
            score = self.logits.gather(1, targets.view(-1, 1)).sum()
            (maps,) = torch.autograd.grad(score, self.inputs, retain_graph=retain_graph)
        return Explanation(maps, targets, self.logits.detach(), rule.name, report)


@contextmanager
def forward_pass(model: nn.Module, inputs: torch.Tensor) -> Iterator[ForwardPass]:
    """Run ``model`` on ``inputs`` in explanation mode and keep the graph for the block.

    The model runs in eval mode with frozen parameters; its train flags and ``requires_grad`` are
    restored when the block ends, also on an exception. Works inside ``torch.no_grad()``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a float tensor (B, C, H, W); got {shape}")
    check_eager(model)
    with torch.inference_mode(False), torch.enable_grad(), explanation_mode(model):
        x = inputs.detach().requires_grad_(True)
        logits = model(x)
        if (
            not isinstance(logits, torch.Tensor)
            or logits.dim() != 2
            or logits.shape[0] != x.shape[0]
        ):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"model must return logits of shape (B, K) for B={x.shape[0]}; got {got}"
            )
        yield ForwardPass(x, logits)


def explain(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str = "guided",
    target: Target = None,
) -> Explanation:
    """Saliency maps of ``model`` for a batch of preprocessed ``inputs`` (B, C, H, W).

    ``method`` is ``"gradient"``, ``"deconvnet"`` or ``"guided"`` (case-insensitive). ``target``
    is ``None`` (top-1 of each sample), an int, or B ints. One forward and one input-only
    backward pass serve the whole batch. Warns (:class:`RuleCoverageWarning`) when a changing rule
    found no unit or left other activations with their plain gradient.
    """
    rule = get_rule(method)
    with forward_pass(model, inputs) as graph:
        targets, check = _targets(target, graph.logits)
        result = graph.explain(rule, targets, retain_graph=False)
    check()
    message = result.report.warning()
    if message:
        warnings.warn(message, RuleCoverageWarning, stacklevel=2)
    return result
