"""``gradient_rollout``: gradient-weighted attention rollout (Chefer, Gur & Wolf, ICCV 2021,
"Generic Attention-model Explainability for Interpreting Bi-Modal and Encoder-Decoder
Transformers"): each block's attention weighted by the target score's gradient with respect to
it, its positive part averaged over the heads, Ā = mean_h((∇A ⊙ A)⁺), and accumulated from the
first block with the residual as the identity: R = I, then R ← R + Ā R per block. The map is
the class token's row of R over the patch tokens.

R = (I + Ā_L) ⋯ (I + Ā_1), so the class token's row is carried from the last block down as a
vector, as rollout's is. Class-sensitive, and it takes every target object: a class, a
multi-label class, a similarity to a reference photo.
"""

from __future__ import annotations

import torch

from ..engine.attention import AttentionMaps
from ..engine.method import ATTENTION, Method, SharedPasses
from ..engine.registry import register_method
from .rollout import class_row


def gradient_rollout_row(attention: AttentionMaps) -> torch.Tensor:
    """The class token's row (B, N) of R = (I + Ā_L) ⋯ (I + Ā_1)."""
    assert attention.gradients is not None, "gradient rollout needs the attention's gradients"
    row = class_row(attention)
    blocks = zip(attention.weights, attention.gradients, strict=True)
    for weights, grads in reversed(list(blocks)):
        block = (grads * weights).clamp(min=0).mean(dim=1)
        row = row + torch.bmm(row.unsqueeze(1), block).squeeze(1)
    return row


@register_method
class GradientRollout(Method):
    name = "gradient_rollout"
    summary = "attention weighted by its gradient, rolled out over the blocks (Chefer 2021)"
    cost = "1 forward + 1 backward down to the first block's attention"
    passes = (ATTENTION,)
    order = 87

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        attention = shared.attention
        assert attention is not None
        return shared.upsampled(attention.patch_map(gradient_rollout_row(attention)))
