"""``layercam``: LayerCAM (Jiang et al. 2021): every position of every channel weighted by its own
positive gradient, no spatial average, so the map keeps the layer's fine detail (it works at
shallow layers too)."""

from __future__ import annotations

import torch

from ..engine.method import LAYER, Method, SharedPasses
from ..engine.registry import register_method


@register_method
class LayerCAM(Method):
    name = "layercam"
    summary = "channels weighted position by position by their positive gradient (Jiang 2021)"
    cost = "1 forward + 1 backward down to the layer only"
    passes = (LAYER,)
    order = 82

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        assert shared.layer is not None
        a, g = shared.layer.activations, shared.layer.gradients
        return shared.upsampled((g.clamp(min=0) * a).sum(dim=1, keepdim=True))
