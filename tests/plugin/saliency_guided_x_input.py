"""A method from outside the library, as a plugin package would ship it: Guided Backprop times
the input, scaled, with settings and a manifest key of its own. The registry tests load it
in-process and through a real entry point."""

from __future__ import annotations

from typing import Any

import torch

from saliency import Method, Setting, register_method
from saliency.engine.method import RulePass, SharedPasses


@register_method
class GuidedXInput(Method):
    name = "guided_x_input"
    summary = "Guided Backprop times the input"
    cost = "1 forward + 1 backward (shared with guided)"
    passes = (RulePass("guided"),)
    settings = (
        Setting("scale", float, 1.0, "multiplies the map", low=0.0, low_open=True),
        Setting("chunk", int, 8, "rows per step: speed only", low=1, changes_maps=False),
    )

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        scale = shared.settings(self)["scale"]
        return shared.grads["guided"] * shared.inputs * scale

    def manifest_keys(self, explanation: Any, options: Any) -> list[dict[str, Any]]:
        """Each map's largest magnitude: a key of the plugin's own."""
        peaks = explanation.maps.detach().abs().flatten(1).amax(dim=1).tolist()
        return [{"peak": round(peak, 6)} for peak in peaks]
