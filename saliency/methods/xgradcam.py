"""``xgradcam``: XGrad-CAM (Fu et al. 2020): each channel weighted by its gradient averaged over
the positions in proportion to the activation there, the weights that make the map satisfy the
paper's sensitivity and conservation axioms."""

from __future__ import annotations

import torch

from ..engine.method import LAYER, Method, SharedPasses
from ..engine.registry import register_method


@register_method
class XGradCAM(Method):
    name = "xgradcam"
    summary = "Grad-CAM with activation-weighted gradient averages (Fu et al. 2020)"
    cost = "1 forward + 1 backward down to the layer only"
    passes = (LAYER,)
    order = 81

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        assert shared.layer is not None
        a, g = shared.layer.activations, shared.layer.gradients
        totals = a.sum(dim=(2, 3), keepdim=True)
        weights = (g * a / (totals + 1e-7)).sum(dim=(2, 3), keepdim=True)
        return shared.upsampled((weights * a).sum(dim=1, keepdim=True))
