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
from ..engine.passes import expanded
from ..engine.registry import register_method
from ..engine.report import RuleReport
from ..engine.state import explanation_mode


@register_method
class ScoreCAM(Method):
    name = "scorecam"
    summary = "channels weighted by the score of the photo each one masks (Wang et al. 2020)"
    cost = "1 forward per channel of the layer (hundreds), batched; no backward"
    slow = True
    order = 85
    explains_layer = True

    def compute(self, context: PathContext) -> list[MethodOutput]:
        model, inputs = context.model, context.inputs
        layer, activations = context.layer_activations()  # (B, K, h, w), read with the logits
        with torch.no_grad(), explanation_mode(model):
            scores = self._masked_scores(context, activations)
        maps = []
        for found in scores:  # per target set: (B, K)
            weights = found.float().softmax(dim=1).to(activations.dtype)
            maps.append((weights[:, :, None, None] * activations).sum(dim=1, keepdim=True))
        size = tuple(inputs.shape[-2:])
        return [
            MethodOutput(upsampled(found, size), RuleReport("gradient"), layer=layer)
            for found in maps
        ]

    @staticmethod
    def _masked_scores(context: PathContext, activations: torch.Tensor) -> list[torch.Tensor]:
        """Per target set, the score (B, K) of each photo masked by each of its channels,
        enlarged and scaled to [0, 1]."""
        inputs = context.inputs
        batch, channels = activations.shape[:2]
        scores = [inputs.new_zeros(batch, channels) for _ in context.target_sets]
        for sample, k in expanded(
            batch, channels, context.options.batch_size, inputs.device, context.should_stop
        ):
            masks = F.interpolate(
                activations[sample, k][:, None],
                size=tuple(inputs.shape[-2:]),
                mode="bilinear",
                align_corners=True,
            )
            flat = masks.flatten(1)
            low, high = flat.amin(dim=1), flat.amax(dim=1)
            masks = (masks - low.view(-1, 1, 1, 1)) / (high - low + 1e-8).view(-1, 1, 1, 1)
            logits = context.model(inputs[sample] * masks)
            for found, targets in zip(scores, context.target_sets, strict=True):
                column = targets[sample].view(-1, 1)
                found[sample, k] = logits.gather(1, column)[:, 0].to(found.dtype)
        return scores
