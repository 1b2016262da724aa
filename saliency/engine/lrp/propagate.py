"""One LRP pass: a forward pass that records its calls, then one backward pass per target set
that starts from the target's logit and carries relevance down to the input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..objectives import ClassTarget, Target, as_target
from ..passes import _check_logits, check_inputs
from ..state import explanation_mode
from .plan import Coverage, Plan, RuleSet
from .record import Recorder


def box_bounds(
    normalization: tuple[Sequence[float], Sequence[float]] | None,
    like: torch.Tensor,
    low: float | None = None,
    high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The z^B rule's bounds per channel of ``like`` (B, C, H, W): ``low`` and ``high`` where
    given, else the normalized images of an all-black and an all-white photo under the model's
    own normalization ``(mean, std)``."""
    channels = like.shape[1]
    if normalization is None and (low is None or high is None):
        raise ValueError(
            "the z-box rule needs its bounds: pass the LoadedModel from load_model() (they are "
            "the normalized black and white images), or give low= and high="
        )
    found = []
    for value, photo in ((low, 0.0), (high, 1.0)):
        if value is not None:
            found.append(
                torch.full((channels,), float(value), dtype=like.dtype, device=like.device)
            )
            continue
        assert normalization is not None
        mean, std = (torch.tensor(v, dtype=like.dtype, device=like.device) for v in normalization)
        found.append(((photo - mean) / std).reshape(-1).expand(channels).clone())
    return found[0], found[1]


def relevance(
    model: nn.Module,
    inputs: torch.Tensor,
    target_sets: Sequence[Target | torch.Tensor],
    rules: RuleSet,
) -> tuple[torch.Tensor, list[torch.Tensor], Coverage]:
    """The logits, and per target set the relevance at the input (shaped like ``inputs``) when
    the target's logit is the starting relevance (other classes 0), under ``rules``; with what
    the rules covered. The model is run in explanation mode and left exactly as it was."""
    check_inputs(model, inputs)
    with torch.inference_mode(False), torch.enable_grad(), explanation_mode(model):
        x = inputs.detach().requires_grad_(True)
        with Recorder() as recorder:
            logits = _check_logits(model(x), x.shape[0])
        plan = Plan(logits, recorder.calls, rules)
        found = []
        with plan.hooks() as coverage:
            for n, target in enumerate(target_sets):
                column = _classes(target, logits).view(-1, 1)
                start = torch.zeros_like(logits).scatter_(
                    1, column, logits.detach().gather(1, column)
                )
                keep = n < len(target_sets) - 1
                (maps,) = torch.autograd.grad(logits, x, start, retain_graph=keep)
                found.append(maps)
    return logits.detach(), found, coverage


def require_classes(target_sets: Sequence[Target | torch.Tensor]) -> None:
    """LRP starts from one logit of a classifier, so any other target is refused, saying so
    (never a silent wrong map)."""
    for target in map(as_target, target_sets):
        if not isinstance(target, ClassTarget):
            raise ValueError(
                f"LRP starts its relevance at one logit of a classifier; it does not take a "
                f"{target.kind} target (use gradient, integrated_gradients or a CAM method)"
            )


def _classes(target: Target | torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The class whose logit starts each sample's relevance."""
    require_classes([target])
    if logits.dim() != 2:
        raise ValueError(f"LRP needs a classifier's logits (B, K), got {tuple(logits.shape)}")
    return as_target(target).classes(logits.shape[0], logits.device)
