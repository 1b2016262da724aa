"""``gradcam``: Grad-CAM (Selvaraju et al. 2017) at a feature-map layer: the layer's channels
weighted by their spatially averaged gradient, summed, ReLU, upsampled bilinearly to the input."""

from __future__ import annotations

from ..engine.method import LAYER, Method
from ..engine.registry import register_method


@register_method
class GradCAM(Method):
    name = "gradcam"
    summary = "class-sensitive coarse map at a feature-map layer (Selvaraju et al. 2017)"
    cost = "1 forward + 1 backward down to the layer only"
    passes = (LAYER,)
    order = 40
