"""``xgradcam``: XGrad-CAM (Fu et al. 2020): each channel weighted by its gradient averaged over
the positions in proportion to the activation there, the weights that make the map satisfy the
paper's sensitivity and conservation axioms."""

from __future__ import annotations

import torch

from ..engine.method import CAMMethod
from ..engine.registry import register_method


@register_method
class XGradCAM(CAMMethod):
    name = "xgradcam"
    summary = "Grad-CAM with activation-weighted gradient averages (Fu et al. 2020)"
    order = 81

    def layer_map(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        totals = a.sum(dim=(2, 3), keepdim=True)
        weights = (g * a / (totals + 1e-7)).sum(dim=(2, 3), keepdim=True)
        return (weights * a).sum(dim=1, keepdim=True)
