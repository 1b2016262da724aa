"""``eigencam``: Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of a
feature-map layer's activations, position by position. Forward only and class-agnostic: every
target gets the same map.

A principal component's sign is arbitrary (an SVD may return either), so it is fixed here: the
component is turned to correlate positively with the layer's mean activation, then cut at zero
and enlarged as every CAM is. Each image is projected on its own, so a map does not depend on
its batch.
"""

from __future__ import annotations

import torch

from ..engine.method import Method, MethodOutput, PathContext, upsampled
from ..engine.registry import register_method
from ..engine.report import RuleReport


def principal_projection(activations: torch.Tensor) -> torch.Tensor:
    """Each image's activations (K, h, w) projected on their first principal component over
    the positions, signed to agree with the mean activation: (B, 1, h, w)."""
    maps = []
    for a in activations.double():
        k, h, w = a.shape
        x = a.reshape(k, h * w).T  # positions as samples, channels as features
        x = x - x.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        projection = x @ vh[0]
        mean = a.mean(dim=0).reshape(-1)
        agreement = ((projection - projection.mean()) * (mean - mean.mean())).sum()
        maps.append((-projection if agreement < 0 else projection).reshape(1, h, w))
    return torch.stack(maps).to(activations.dtype)


@register_method
class EigenCAM(Method):
    name = "eigencam"
    summary = "first principal component of the layer's activations, class-agnostic (Muhammad 2020)"
    cost = "nothing beyond the forward pass every method shares; the same map for every target"
    order = 84
    explains_layer = True

    def compute(self, context: PathContext) -> list[MethodOutput]:
        """The layer as the logits' forward pass read it: no pass of its own."""
        layer, activations = context.layer_activations()
        with torch.no_grad():
            maps = upsampled(principal_projection(activations), tuple(context.inputs.shape[-2:]))
        return [
            MethodOutput(maps, RuleReport("gradient"), layer=layer) for _ in context.target_sets
        ]
