"""``hirescam``: HiResCAM (Draelos & Carin 2020): the gradient times the activation, position by
position, summed over channels: unlike Grad-CAM's averaged weights, it shows only places that
raise the score (for a last conv layer followed by pooling and a linear layer, exactly)."""

from __future__ import annotations

import torch

from ..engine.method import CAMMethod
from ..engine.registry import register_method


@register_method
class HiResCAM(CAMMethod):
    name = "hirescam"
    summary = "gradient x activation at the layer, position by position (Draelos & Carin 2020)"
    order = 83

    def layer_map(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (g * a).sum(dim=1, keepdim=True)
