"""Forward passes kept for several backward passes, and the passes of an expanded batch.

One forward pass serves every shared pass (each rule, Grad-CAM's layer pass) and target set;
:func:`expanded` splits a batch of many copies (noisy inputs, path points) into passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from .attention import AttentionCapture, AttentionMaps
from .hooks import GraphUnits, RuleHooks, find_units
from .layers import LayerCapture, resolve_layer
from .method import (
    ATTENTION,
    LAYER,
    LayerGradients,
    Method,
    PathContext,
    RulePass,
    SharedPasses,
)  # fmt: skip
from .objectives import Target, as_target, model_output
from .progress import passed
from .registry import get_method
from .report import RuleReport
from .rules import Rule, get_rule
from .state import check_eager, explanation_mode

if TYPE_CHECKING:
    from .options import MethodOptions


class Stopped(Exception):
    """``should_stop`` turned true in the middle of an expanded batch."""


class ForwardPass:
    """The graph of one forward pass, reusable for several methods and targets.

    Each rule is one backward pass over the input; Grad-CAM adds one backward pass that stops at
    its layer. Methods that declare the same pass share it.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        logits: torch.Tensor,
        capture: LayerCapture | None = None,
        attention: AttentionCapture | None = None,
    ) -> None:
        self.inputs = inputs
        self.logits = logits
        self.capture = capture
        self.attention = attention
        self._units: GraphUnits | None = None

    @property
    def units(self) -> GraphUnits:
        """The ReLU-family units of the graph, found once."""
        if self._units is None:
            self._units = find_units(self.logits)
        return self._units

    @property
    def layer(self) -> str | None:
        """The name of the captured Grad-CAM layer, if any."""
        return self.capture.name if self.capture is not None else None

    def shared(
        self,
        methods: Sequence[Method | str],
        targets: Target | torch.Tensor,
        *,
        retain_graph: bool = True,
        options: MethodOptions | None = None,
    ) -> dict[str, tuple[torch.Tensor, RuleReport]]:
        """Per method, its maps for ``targets`` (a target, or classes (B,)) and its rule report:
        every declared pass runs once, then each method combines them (reading its settings from
        ``options``; defaults without). Keeps the graph unless told."""
        chosen = [get_method(m) for m in methods]
        for method in chosen:
            if not method.passes:
                raise ValueError(f"{method.name} needs forward passes of its own: use explain()")
            if method.uses_layer and self.capture is None:
                raise ValueError(f"{method.name} needs a layer: forward_pass(..., capture=True)")
            if ATTENTION in method.passes and self.attention is None:
                raise ValueError(f"{method.name} reads attention: forward_pass(attention=True)")
        declared = [p for m in chosen for p in m.passes]
        plan = [p for p in (LAYER, ATTENTION) if p in declared] + list(
            dict.fromkeys(p for p in declared if isinstance(p, RulePass))
        )
        grads: dict[str, torch.Tensor] = {}
        reports: dict[str, RuleReport] = {}
        layer = attention = None
        for n, step in enumerate(plan):
            keep = retain_graph or n < len(plan) - 1
            if isinstance(step, RulePass):
                grads[step.rule], reports[step.rule] = self.rule_pass(
                    get_rule(step.rule), targets, keep
                )
            elif step == ATTENTION:
                attention = self.attention_pass(targets, keep)
            else:
                layer = self.layer_pass(targets, keep)
        shared = SharedPasses(self.inputs.detach(), grads, layer, options, attention)
        return {
            m.name: (m.combine(shared), reports[m.rule] if m.rule else RuleReport("gradient"))
            for m in chosen
        }

    def rule_pass(
        self, rule: Rule, targets: Target | torch.Tensor, keep: bool
    ) -> tuple[torch.Tensor, RuleReport]:
        """d score[targets] / d inputs under ``rule``, and where the rule was applied."""
        units = self.units if rule.changes_gradient else GraphUnits()
        with RuleHooks(self.logits, rule, units) as report:
            score = as_target(targets).score(self.logits).sum()
            (maps,) = torch.autograd.grad(score, self.inputs, retain_graph=keep)
        return maps, report

    def layer_pass(self, targets: Target | torch.Tensor, keep: bool) -> LayerGradients:
        """The captured layer's activations and d score[targets] / d them: one backward pass
        that stops at the layer."""
        assert self.capture is not None
        activation = self.capture.activation()
        score = as_target(targets).score(self.logits).sum()
        grads = torch.autograd.grad(
            score, self.capture.sources(), retain_graph=keep, allow_unused=True
        )
        return LayerGradients(activation.detach(), self.capture.gradient(grads))

    def attention_pass(self, targets: Target | torch.Tensor, keep: bool) -> AttentionMaps:
        """Every block's attention and d score[targets] / d it: one backward pass that stops
        at the first block's attention."""
        assert self.attention is not None
        self.attention.weights()  # each block read once, or refused
        score = as_target(targets).score(self.logits).sum()
        grads = torch.autograd.grad(
            score, self.attention.sources, retain_graph=keep, allow_unused=True
        )
        return AttentionMaps.read(self.attention, self.attention.gradients(list(grads)))


def check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    """Refuse what is not a module, a non-float (B, C, H, W) batch, or a compiled model."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or not inputs.is_floating_point():
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must be a float tensor (B, C, H, W); got {shape}")
    check_eager(model)


def _check_logits(output: object, batch: int) -> torch.Tensor:
    """The model's output as a tensor with the batch first: a classifier's logits (B, K), a
    segmentation's (B, C, H, W) (also as torchvision's ``{"out": ...}``), an embedding (B, D)."""
    if isinstance(output, Mapping):
        output = model_output(output)
    if not isinstance(output, torch.Tensor) or output.dim() < 2 or output.shape[0] != batch:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(
            f"model must return a tensor (B, ...) for B={batch}, such as logits (B, K); got {got}"
        )
    return output


@contextmanager
def forward_pass(
    model: nn.Module,
    inputs: torch.Tensor,
    layer: str | None = None,
    *,
    capture: bool = False,
    attention: bool = False,
) -> Iterator[ForwardPass]:
    """Run ``model`` on ``inputs`` in explanation mode and keep the graph for the block.

    With ``capture``, the output of ``layer`` (None: the default Grad-CAM layer, see
    :mod:`saliency.engine.layers`) is kept for Grad-CAM; with ``attention``, every block's
    attention weights (see :mod:`saliency.engine.attention`). The model runs in eval mode with
    frozen parameters; its train flags and ``requires_grad`` are restored when the block ends,
    also on an exception. Works inside ``torch.no_grad()``.
    """
    check_inputs(model, inputs)
    if layer is not None and not capture:
        raise ValueError("a layer is captured only with capture=True")
    with torch.inference_mode(False), torch.enable_grad(), explanation_mode(model):
        x = inputs.detach().requires_grad_(True)
        with ExitStack() as stack:
            hold = attending = None
            if capture:
                name = resolve_layer(model, x.detach(), layer)
                hold = stack.enter_context(LayerCapture(model, name))
            if attention:
                attending = stack.enter_context(AttentionCapture(model))
            logits = _check_logits(model(x), x.shape[0])
        yield ForwardPass(x, logits, hold, attending)


def predict(model: nn.Module, inputs: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """The model's logits for ``inputs`` in explanation mode, without gradients, in batches."""
    check_inputs(model, inputs)
    with torch.no_grad(), explanation_mode(model):
        return torch.cat(
            [_check_logits(model(part), len(part)) for part in inputs.detach().split(batch_size)]
        )


def predict_reading(
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int,
    layer: str | None,
    *,
    read_layer: bool = True,
    read_attention: bool = False,
) -> tuple[torch.Tensor, tuple[str, torch.Tensor] | None, AttentionMaps | None]:
    """As :func:`predict`, reading in the same passes the feature-map ``layer`` (None: found)
    and, with ``read_attention``, every block's attention: the logits, the layer's name and
    activations (B, K, h, w) (None without ``read_layer``) and the attention (or None)."""
    check_inputs(model, inputs)
    with torch.no_grad(), explanation_mode(model):
        name = resolve_layer(model, inputs[:1], layer) if read_layer else None
        logits, activations, attention = [], [], []
        for part in inputs.detach().split(batch_size):
            with ExitStack() as stack:
                capture = None if name is None else stack.enter_context(LayerCapture(model, name))
                attending = stack.enter_context(AttentionCapture(model)) if read_attention else None
                logits.append(_check_logits(model(part), len(part)))
            if capture is not None:
                activations.append(capture.activation())
            if attending is not None:
                attention.append(AttentionMaps.read(attending))
    read = None if name is None else (name, torch.cat(activations))
    return torch.cat(logits), read, _joined(attention)


def _joined(parts: list[AttentionMaps]) -> AttentionMaps | None:
    """The attention read in several passes as one batch's."""
    if not parts:
        return None
    weights = [torch.cat(blocks) for blocks in zip(*(p.weights for p in parts), strict=True)]
    return AttentionMaps(weights, None, parts[0].prefix, parts[0].grid)


def copy_scores(
    context: PathContext,
    copies: int,
    make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> list[torch.Tensor]:
    """Per target set, the target's score (B, copies) for ``copies`` variants of every input,
    forward only, ``batch_size`` a pass: ``make(sample, k)`` builds a pass's variants, variant
    ``k`` of input ``sample``. The loop of the methods that perturb the input (Occlusion,
    Score-CAM)."""
    inputs = context.inputs
    scores = [inputs.new_zeros(inputs.shape[0], copies) for _ in context.target_sets]
    batches = expanded(
        inputs.shape[0], copies, context.options.batch_size, inputs.device, context.should_stop
    )
    with torch.no_grad(), explanation_mode(context.model):
        for sample, k in batches:
            output = _check_logits(context.model(make(sample, k)), len(sample))
            for found, target in zip(scores, context.target_sets, strict=True):
                found[sample, k] = target.select(sample).score(output).to(found.dtype)
    return scores


def expanded(
    batch: int,
    copies: int,
    size: int,
    device: torch.device,
    should_stop: Callable[[], bool] | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The ``batch`` x ``copies`` rows of an expanded batch, ``size`` rows a pass: for each pass,
    the input each row copies and the row's copy number. Raises :class:`Stopped` between passes
    once ``should_stop()`` turns true, and tells the pass watchers (:mod:`.progress`) after each.
    """
    total = batch * copies
    for start in range(0, total, size):
        if should_stop is not None and should_stop():
            raise Stopped
        end = min(start + size, total)
        rows = torch.arange(start, end, device=device)
        yield rows // copies, rows % copies
        passed(end, total)
