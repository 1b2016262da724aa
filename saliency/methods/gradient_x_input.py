"""``gradient_x_input``: the true gradient times the input (Shrikumar et al. 2016)."""

from __future__ import annotations

import torch

from ..engine.method import Method, RulePass, SharedPasses
from ..engine.registry import register_method


@register_method
class GradientXInput(Method):
    name = "gradient_x_input"
    summary = "true gradient times the input (Shrikumar et al. 2016)"
    cost = "1 forward + 1 backward"
    passes = (RulePass("gradient"),)
    order = 70

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        return shared.grads["gradient"] * shared.inputs
