"""A method from outside the library, as a plugin package would ship it: Guided Backprop times
the input. The registry tests load it in-process and through a real entry point."""

from __future__ import annotations

import torch

from saliency import Method, register_method
from saliency.engine.method import RulePass, SharedPasses


@register_method
class GuidedXInput(Method):
    name = "guided_x_input"
    summary = "Guided Backprop times the input"
    cost = "1 forward + 1 backward (shared with guided)"
    passes = (RulePass("guided"),)

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        return shared.grads["guided"] * shared.inputs
