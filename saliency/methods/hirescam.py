"""``hirescam``: HiResCAM (Draelos & Carin 2020): the gradient times the activation, position by
position, summed over channels: unlike Grad-CAM's averaged weights, it shows only places that
raise the score (for a last conv layer followed by pooling and a linear layer, exactly)."""

from __future__ import annotations

import torch

from ..engine.method import LAYER, Method, SharedPasses
from ..engine.registry import register_method


@register_method
class HiResCAM(Method):
    name = "hirescam"
    summary = "gradient x activation at the layer, position by position (Draelos & Carin 2020)"
    cost = "1 forward + 1 backward down to the layer only"
    passes = (LAYER,)
    order = 83

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        assert shared.layer is not None
        a, g = shared.layer.activations, shared.layer.gradients
        return shared.upsampled((g * a).sum(dim=1, keepdim=True))
