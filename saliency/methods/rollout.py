"""``rollout``: attention rollout (Abnar & Zuidema, ACL 2020): how much each patch token flows
into the class token through every block's attention, the residual connection counted as the
identity.

Per block the heads' attention is fused (``head_fusion``: their mean, as the paper; max or min
as jacobgil/vit-explain offers), the lowest ``discard_ratio`` of it zeroed (default 0: the
paper's; never the class token's attention to itself), the identity added and each row
renormalized: Ā = (A + I) / 2, rows summing to one. Rollout is Ā_L ⋯ Ā_1; the map is the class
token's row over the patch tokens. Only that row is needed, so it is carried from the last block
down as a vector: L vector-matrix products instead of L matrix products.

Forward only and class-agnostic: every target gets the same map. It reads the attention of the
forward pass that computes the logits, so it costs that pass with attention made explicit.
"""

from __future__ import annotations

import torch

from ..engine.attention import AttentionMaps
from ..engine.method import Method, MethodOutput, PathContext, upsampled
from ..engine.registry import register_method
from ..engine.report import RuleReport
from ..engine.settings import Setting


def fused(weights: torch.Tensor, how: str) -> torch.Tensor:
    """One block's attention (B, H, N, N) fused over its heads: (B, N, N)."""
    if how == "mean":
        return weights.mean(dim=1)
    return weights.amax(dim=1) if how == "max" else weights.amin(dim=1)


def discarded(attention: torch.Tensor, ratio: float) -> torch.Tensor:
    """``attention`` (B, N, N) with each image's lowest ``ratio`` of entries zeroed, the class
    token's attention to itself kept (as jacobgil/vit-explain)."""
    flat = attention.flatten(1)
    count = int(flat.shape[1] * ratio)
    if count == 0:
        return attention
    lowest = flat.topk(count, dim=1, largest=False).indices
    keep = flat[:, :1].clone()
    flat = flat.scatter(1, lowest, 0.0)
    flat[:, :1] = keep
    return flat.reshape(attention.shape)


def class_row(attention: AttentionMaps) -> torch.Tensor:
    """The first token's row of ones (B, N): where every row product starts."""
    first = attention.weights[0]
    row = first.new_zeros(first.shape[0], first.shape[-1])
    row[:, 0] = 1.0
    return row


def rollout_row(attention: AttentionMaps, head_fusion: str, discard_ratio: float) -> torch.Tensor:
    """The class token's row (B, N) of Ā_L ⋯ Ā_1, computed from the last block down."""
    row = class_row(attention)
    eye = torch.eye(row.shape[1], device=row.device, dtype=row.dtype)
    for weights in reversed(attention.weights):
        block = (discarded(fused(weights, head_fusion), discard_ratio) + eye) / 2
        block = block / block.sum(dim=-1, keepdim=True)
        row = torch.bmm(row.unsqueeze(1), block).squeeze(1)
    return row


@register_method
class Rollout(Method):
    name = "rollout"
    summary = "attention flowed from the patches to the class token, all blocks (Abnar 2020)"
    cost = "nothing beyond the forward pass every method shares (attention explicit); no backward"
    order = 86
    reads_attention = True
    settings = (
        Setting("head_fusion", str, "mean", "how each block's heads are fused",
                choices=("mean", "max", "min")),  # fmt: skip
        Setting(
            "discard_ratio", float, 0.0,
            "share of each block's lowest attention zeroed (0: the paper's rollout)",
            low=0.0, high=0.99,
        ),  # fmt: skip
    )

    def compute(self, context: PathContext) -> list[MethodOutput]:
        """The class token's rollout row as a map, the same for every target."""
        attention = context.attention or read_attention(context)
        values = context.options.of(self)
        with torch.no_grad():
            row = rollout_row(attention, values["head_fusion"], values["discard_ratio"])
            maps = upsampled(attention.patch_map(row), tuple(context.inputs.shape[-2:]))
        return [MethodOutput(maps, RuleReport("gradient")) for _ in context.target_sets]


def read_attention(context: PathContext) -> AttentionMaps:
    """The attention of ``context.inputs``, read by a forward pass of its own (where the
    logits' pass did not read it)."""
    from ..engine.passes import predict_reading

    _, _, attention = predict_reading(
        context.model, context.inputs, context.options.batch_size, None,
        read_layer=False, read_attention=True,
    )  # fmt: skip
    assert attention is not None
    return attention
