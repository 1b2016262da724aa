"""``scorecam``: Score-CAM (Wang et al. 2020): each channel of a feature-map layer weighted by the
class score of the photo masked by that channel (enlarged to the photo, scaled to [0, 1]); the
scores are turned into weights by a softmax over the channels. No gradient at all.

It costs one forward pass per channel of the layer (hundreds, or 1280 at the offline model's
default layer); the layer itself is read by the forward pass that every method shares. The
masked copies of all the batch's images run ``batch_size`` a pass, each made when its pass
comes (never all at once); one set of passes serves every target. A copy's score does not
depend on its pass, so a map does not depend on its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..engine.method import Method, MethodOutput, PathContext, upsampled
from ..engine.passes import copy_scores
from ..engine.registry import register_method
from ..engine.report import RuleReport


@register_method
class ScoreCAM(Method):
    name = "scorecam"
    summary = "channels weighted by the score of the photo each one masks (Wang et al. 2020)"
    cost = "1 forward per channel of the layer (hundreds), batched; no backward"
    slow = True
    order = 85
    explains_layer = True

    def compute(self, context: PathContext) -> list[MethodOutput]:
        inputs = context.inputs
        layer, activations = context.layer_activations()  # (B, K, h, w), read with the logits

        def masked(sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            """The photos masked by their channels, enlarged and scaled to [0, 1]."""
            masks = F.interpolate(
                activations[sample, k][:, None],
                size=tuple(inputs.shape[-2:]),
                mode="bilinear",
                align_corners=True,
            )
            flat = masks.flatten(1)
            low, high = flat.amin(dim=1), flat.amax(dim=1)
            masks = (masks - low.view(-1, 1, 1, 1)) / (high - low + 1e-8).view(-1, 1, 1, 1)
            return inputs[sample] * masks

        maps = []
        for found in copy_scores(context, activations.shape[1], masked):  # per target set
            weights = found.float().softmax(dim=1).to(activations.dtype)
            maps.append((weights[:, :, None, None] * activations).sum(dim=1, keepdim=True))
        size = tuple(inputs.shape[-2:])
        return [
            MethodOutput(upsampled(found, size), RuleReport("gradient"), layer=layer)
            for found in maps
        ]
