"""``integrated_gradients``: (input - baseline) times the gradient averaged along the straight
path from the baseline (Sundararajan et al. 2017).

The attribution is ``(x - x0) * integral_0^1 grad F(x0 + a (x - x0)) da``. The integral is
taken with Gauss-Legendre quadrature on ``steps`` points (Captum's default rule): for the same
step count it is far closer to the integral than the paper's right Riemann sum on smooth
stretches of the path. The sum of the attributions then approximates ``F(x) - F(x0)``
(completeness); the difference is reported as the completeness error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..choices import BASELINES
from ..engine.baselines import make_baseline
from ..engine.method import Method, MethodOutput, PathContext, Settings
from ..engine.passes import expanded, forward_pass, predict
from ..engine.registry import register_method
from ..engine.report import RuleReport
from ..engine.rules import get_rule
from ..engine.settings import Setting
from ..explanation import Explanation


def quadrature(steps: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes on (0, 1) and their weights (summing to 1), ``steps`` of each."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alphas = torch.tensor(0.5 * (nodes + 1.0), dtype=torch.float64, device=device)
    return alphas, torch.tensor(0.5 * weights, dtype=torch.float64, device=device)


@register_method
class IntegratedGradients(Method):
    name = "integrated_gradients"
    summary = "(input - baseline) x gradient averaged along the path (Sundararajan et al. 2017)"
    cost = "STEPS forwards + STEPS backwards, batched, + 2 forwards for the completeness check"
    order = 60
    settings = (
        Setting(
            "baseline",
            str,
            "black",
            "where the path starts: a black image, the zero input (the mean colour) or the "
            "photo blurred",
            choices=BASELINES,
            tensor=True,
        ),
        Setting("steps", int, 32, "points on the path, batched", low=1),
    )

    def compute(self, context: PathContext) -> list[MethodOutput]:
        """Per target set: the attributions, with the score difference and the completeness
        error as values. The B x steps path points run ``batch_size`` a pass; each pass's
        forward serves every target set."""
        inputs, options, target_sets = context.inputs, context.options, context.target_sets
        settings = options.of(self)
        baselines = make_baseline(context.clean, settings["baseline"], context.normalization)
        alphas, weights = quadrature(settings["steps"], inputs.device)
        sums = [torch.zeros_like(inputs) for _ in target_sets]
        delta = inputs - baselines
        rule = get_rule("gradient")
        for sample, k in expanded(
            inputs.shape[0],
            settings["steps"],
            options.batch_size,
            inputs.device,
            context.should_stop,
        ):
            alpha = alphas[k].to(inputs.dtype).view(-1, 1, 1, 1)
            weight = weights[k].to(inputs.dtype).view(-1, 1, 1, 1)
            points = baselines[sample] + alpha * delta[sample]
            with forward_pass(context.model, points) as graph:
                for n, target in enumerate(target_sets):
                    keep = n < len(target_sets) - 1
                    grads, _ = graph.rule_pass(rule, target.select(sample), keep)
                    sums[n].index_add_(0, sample, grads * weight)
        at_input = context.logits
        if at_input is None:
            at_input = predict(context.model, inputs, options.batch_size)
        at_baseline = predict(context.model, baselines, options.batch_size)
        outputs = []
        for total_grad, target in zip(sums, target_sets, strict=True):
            maps = delta * total_grad
            difference = target.score(at_input) - target.score(at_baseline)
            error = maps.flatten(1).sum(dim=1) - difference
            values = {"completeness": error, "score_difference": difference}
            outputs.append(MethodOutput(maps, RuleReport("gradient"), values))
        return outputs

    def manifest_keys(
        self, explanation: Explanation, options: Settings
    ) -> list[dict[str, Any]]:
        """Each sample's score difference and completeness error (conservation, at a glance)."""
        errors = explanation.values["completeness"].float().cpu().tolist()
        differences = explanation.values["score_difference"].float().cpu().tolist()
        return [
            {"score_difference": round(difference, 6), "completeness_error": round(error, 6)}
            for error, difference in zip(errors, differences, strict=True)
        ]
