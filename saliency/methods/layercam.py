"""``layercam``: LayerCAM (Jiang et al. 2021): every position of every channel weighted by its own
positive gradient, no spatial average, so the map keeps the layer's fine detail (it works at
shallow layers too)."""

from __future__ import annotations

import torch

from ..engine.method import CAMMethod
from ..engine.registry import register_method


@register_method
class LayerCAM(CAMMethod):
    name = "layercam"
    summary = "channels weighted position by position by their positive gradient (Jiang 2021)"
    order = 82

    def layer_map(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (g.clamp(min=0) * a).sum(dim=1, keepdim=True)
