"""``scorecam``: Score-CAM (Wang et al. 2020): each channel of a feature-map layer weighted by the
class score of the photo masked by that channel (enlarged to the photo, scaled to [0, 1]); the
scores are turned into weights by a softmax over the channels. No gradient at all.

It costs one forward pass per channel of the layer (hundreds, or 1280 at the offline model's
default layer), run ``batch_size`` masked copies a pass; one set of passes serves every target.
Each image's copies are batched on their own, so a map does not depend on its batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..engine.layers import captured, resolve_layer
from ..engine.method import Method, MethodOutput, PathContext, upsampled
from ..engine.passes import Stopped
from ..engine.progress import passed
from ..engine.registry import register_method
from ..engine.report import RuleReport
from ..engine.state import explanation_mode


@register_method
class ScoreCAM(Method):
    name = "scorecam"
    summary = "channels weighted by the score of the photo each one masks (Wang et al. 2020)"
    cost = "1 forward + 1 forward per channel of the layer (hundreds), batched; no backward"
    slow = True
    order = 85
    explains_layer = True

    def compute(self, context: PathContext) -> list[MethodOutput]:
        model, inputs = context.model, context.inputs
        with torch.no_grad(), explanation_mode(model):
            layer = resolve_layer(model, inputs[:1], context.options.layer)
            maps: list[list[torch.Tensor]] = [[] for _ in context.target_sets]
            for index in range(inputs.shape[0]):
                photo = inputs[index : index + 1]
                activations = captured(model, layer, photo)[0]  # (K, h, w)
                logits = self._masked_scores(context, photo, activations)  # (K, classes)
                for found, targets in zip(maps, context.target_sets, strict=True):
                    weights = logits[:, targets[index]].float().softmax(dim=0)
                    weights = weights.to(activations.dtype).view(-1, 1, 1)
                    found.append((weights * activations).sum(dim=0, keepdim=True))
        size = tuple(inputs.shape[-2:])
        return [
            MethodOutput(upsampled(torch.stack(found), size), RuleReport("gradient"), layer=layer)
            for found in maps
        ]

    @staticmethod
    def _masked_scores(
        context: PathContext, photo: torch.Tensor, activations: torch.Tensor
    ) -> torch.Tensor:
        """The logits of ``photo`` masked by each channel, enlarged and scaled to [0, 1]."""
        masks = F.interpolate(
            activations[None], size=tuple(photo.shape[-2:]), mode="bilinear", align_corners=True
        )[0]
        flat = masks.flatten(1)
        low, high = flat.amin(dim=1), flat.amax(dim=1)
        masks = (masks - low.view(-1, 1, 1)) / (high - low + 1e-8).view(-1, 1, 1)
        scores = []
        for part in masks.split(context.options.batch_size):
            if context.should_stop is not None and context.should_stop():
                raise Stopped
            scores.append(context.model(photo * part[:, None]))
            passed(sum(len(s) for s in scores), len(masks))
        return torch.cat(scores)
