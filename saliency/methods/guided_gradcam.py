"""``guided_gradcam``: Guided Backprop times the upsampled Grad-CAM, from one forward pass."""

from __future__ import annotations

import torch

from ..engine.method import LAYER, Method, RulePass, SharedPasses
from ..engine.registry import register_method


@register_method
class GuidedGradCAM(Method):
    name = "guided_gradcam"
    summary = "Guided Backprop times the upsampled Grad-CAM: crisp and class-sensitive"
    cost = "1 forward + 1 backward + 1 backward down to the layer"
    passes = (RulePass("guided"), LAYER)
    order = 50

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        assert shared.cam is not None
        return shared.grads["guided"] * shared.cam
