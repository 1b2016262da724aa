"""What a vision transformer is made of, read from the model itself: its token layout (how many
prefix tokens come before the patch tokens, and the patch grid for an input size) and its
attention modules (those whose weights can be read by hooks).

Nothing here is guessed from a square root: the prefix count and the grid come from the
model's own attributes (timm's ``num_prefix_tokens``, ``patch_embed.grid_size``,
``dynamic_img_size``; torchvision's ``VisionTransformer``'s ``patch_size`` and ``image_size``).
A model that has neither is no token model here, and its token sequences are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from .needs import ATTENTION, LAYER_RULES

__all__ = [
    "TokenLayout", "attention_modules", "global_attention", "is_transformer", "provided",
    "token_layout",
]  # fmt: skip


@dataclass(frozen=True)
class TokenLayout:
    """How a vision transformer lays out its tokens: ``prefix`` tokens (the class token, DeiT's
    distillation token, registers) before the patch tokens, row by row over the patch grid.

    Attributes:
        prefix: The prefix tokens' count.
        patch: The patch size (h, w) in pixels.
        fixed: The grid of a model that takes one input size only (None: from the input).
        padded: Whether a partial patch at the edge is padded (a grid rounded up).
        class_token: Whether the first token is a class token (what rollout reads the row of).
        default_layer: The CAM layer pytorch-grad-cam's ViT tutorial explains: the last block's
            first norm (after it, the patch tokens reach the class token no more).
    """

    prefix: int
    patch: tuple[int, int]
    fixed: tuple[int, int] | None
    padded: bool
    class_token: bool
    default_layer: str

    def grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """The patch grid (h, w) for an input of ``size`` (H, W)."""
        if self.fixed is not None:
            return self.fixed
        (height, width), (ph, pw) = size, self.patch
        if self.padded:
            return -(-height // ph), -(-width // pw)
        return height // ph, width // pw

    def tokens(self, size: tuple[int, int]) -> int:
        """The sequence length for an input of ``size``: prefix and patch tokens."""
        h, w = self.grid(size)
        return self.prefix + h * w


def input_size(args: tuple[Any, ...]) -> tuple[int, int] | None:
    """The (H, W) of a model's input batch, from a forward pre-hook's ``args`` (None if the
    first is no image batch)."""
    first: Any = args[0] if args else None
    if first is not None and hasattr(first, "dim") and first.dim() == 4:
        return int(first.shape[-2]), int(first.shape[-1])
    return None


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def token_layout(model: nn.Module) -> TokenLayout | None:
    """The token layout of a timm or torchvision vision transformer; None for any other model."""
    embed = getattr(model, "patch_embed", None)
    blocks = getattr(model, "blocks", None)
    prefix = getattr(model, "num_prefix_tokens", None)
    if (
        isinstance(prefix, int) and isinstance(blocks, nn.Sequential) and len(blocks) > 0
        and embed is not None and getattr(embed, "grid_size", None) is not None
    ):  # fmt: skip  (timm's VisionTransformer and its kin: DeiT, registers, DINOv2)
        dynamic = bool(getattr(model, "dynamic_img_size", False))
        return TokenLayout(
            prefix=prefix,
            patch=_pair(embed.patch_size),
            fixed=None if dynamic else _pair(embed.grid_size),
            padded=bool(getattr(embed, "dynamic_img_pad", False)),
            class_token=getattr(model, "cls_token", None) is not None,
            default_layer=f"blocks.{len(blocks) - 1}.norm1",
        )
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    if _torchvision_vit(model) and isinstance(layers, nn.Sequential):
        patch, size = int(model.patch_size), int(model.image_size)  # type: ignore[arg-type]
        last = list(layers.named_children())[-1][0]
        return TokenLayout(1, (patch, patch), (size // patch, size // patch), False, True,
                           f"encoder.layers.{last}.ln_1")  # fmt: skip
    return None


def _torchvision_vit(model: nn.Module) -> bool:
    try:
        from torchvision.models import VisionTransformer
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return False
    return isinstance(model, VisionTransformer)


def _timm_attention(module: nn.Module) -> bool:
    """timm's standard ``Attention`` (or a subclass that keeps its forward): its explicit path
    passes the softmax through ``attn_drop``, where a hook reads it."""
    try:
        from timm.layers import Attention
    except ImportError:  # pragma: no cover - timm is a dependency
        return False
    own = type(module).forward is Attention.forward
    return isinstance(module, Attention) and own and isinstance(module.attn_drop, nn.Dropout)


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The attention modules whose weights hooks can read: timm's ``Attention`` and
    ``nn.MultiheadAttention``, by name, in module order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if _timm_attention(module) or isinstance(module, nn.MultiheadAttention)
    ]


def _attending(model: nn.Module) -> list[nn.Module]:
    """Its attention modules of any kind (timm's, torchvision's ``nn.MultiheadAttention``, a
    windowed Swin one), told by their class's name, readable here or not."""
    return [module for module in model.modules() if "Attention" in type(module).__name__]


def is_transformer(model: nn.Module) -> bool:
    """Whether the model attends: it has an attention module of any kind, whether or not its
    weights can be read here."""
    return bool(_attending(model))


def global_attention(model: nn.Module) -> str | None:
    """Why rollout cannot read ``model``'s attention (None: it can). Rollout needs a class
    token that attends to every patch, and attention that every block's hook can read."""
    name = type(model).__name__
    layout = token_layout(model)
    if not is_transformer(model):
        return f"{name} has no attention (it is no transformer)"
    if layout is None:
        return (
            f"{name}'s attention is not over a class token and a known patch grid (a windowed "
            "Swin, or a transformer this library cannot lay out): rollout has no row to read"
        )
    if not layout.class_token:
        return f"{name} has no class token (it pools its patch tokens): rollout has no row to read"
    found = attention_modules(model)
    attending = _attending(model)
    if not found or len(found) < len(attending):
        kinds = sorted({type(m).__name__ for m in attending})
        return (
            f"{name}'s attention ({', '.join(kinds)}) is not timm's Attention or torchvision's "
            "nn.MultiheadAttention, whose weights hooks can read"
        )
    return None


def provided(model: nn.Module, kind: frozenset[str]) -> frozenset[str]:
    """What methods find in ``model`` of a kind that provides ``kind``: a transformer has no
    layer rules for LRP, and attention where rollout can read it."""
    found = set(kind)
    if is_transformer(model):
        found.discard(LAYER_RULES)
        if global_attention(model) is None:
            found.add(ATTENTION)
    return frozenset(found)
