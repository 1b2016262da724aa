"""``gradcam_plus_plus``: Grad-CAM++ (Chattopadhay et al. 2018): each channel weighted by its
positive gradients, each position's share set by the second and third powers of the gradient
(the paper's equation 19, with the exponential's derivatives), so that several instances of a
class all count."""

from __future__ import annotations

import torch

from ..engine.method import CAMMethod
from ..engine.registry import register_method


@register_method
class GradCAMPlusPlus(CAMMethod):
    name = "gradcam_plus_plus"
    summary = "Grad-CAM with per-position weights: better for several objects (Chattopadhay 2018)"
    order = 80

    def layer_map(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g2 = g * g
        g3 = g2 * g
        totals = a.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + totals * g3 + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        weights = (g.clamp(min=0) * alpha).sum(dim=(2, 3), keepdim=True)
        return (weights * a).sum(dim=1, keepdim=True)
