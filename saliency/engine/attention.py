"""Reading a vision transformer's attention weights by hooks, on the model as given.

timm's ``Attention`` computes attention fused (``F.scaled_dot_product_attention``), which never
forms the weights: for the explanation's pass its explicit path is switched on (``fused_attn``
off), where a forward hook on ``attn_drop`` sees the softmax (B, H, N, N) in the graph; the flag
is restored when the block ends. torchvision's ``nn.MultiheadAttention`` is called with
``need_weights=False``: a forward pre-hook asks for the weights per head, and the tensor its
product with the values used is kept (the returned weights are a view of it). Either way the
weights kept are those the output was computed from, so a gradient with respect to them is
d score / d attention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .transformers import attention_modules, global_attention, input_size, token_layout

__all__ = ["AttentionCapture", "AttentionMaps"]


@dataclass
class AttentionMaps:
    """Every block's attention of a batch, first block first: ``weights`` (each (B, H, N, N),
    detached), the score's ``gradients`` with respect to them where a backward pass ran, and
    how the tokens lie: ``prefix`` tokens (the class token first), then the patch ``grid``."""

    weights: list[torch.Tensor]
    gradients: list[torch.Tensor] | None
    prefix: int
    grid: tuple[int, int]

    def select(self, rows: torch.Tensor) -> AttentionMaps:
        """The maps of the samples ``rows``."""
        pick = [w[rows] for w in self.weights]
        grads = None if self.gradients is None else [g[rows] for g in self.gradients]
        return AttentionMaps(pick, grads, self.prefix, self.grid)

    def patch_map(self, row: torch.Tensor) -> torch.Tensor:
        """A class token's row (B, N) over the tokens as a map (B, 1, h, w) of its patches."""
        h, w = self.grid
        return row[:, self.prefix :].reshape(row.shape[0], 1, h, w)

    @staticmethod
    def read(
        capture: AttentionCapture, grads: list[torch.Tensor] | None = None
    ) -> AttentionMaps:
        """What ``capture`` read in a pass (detached), with the gradients taken if any."""
        layout = token_layout(capture.model)
        assert layout is not None and capture.size is not None  # AttentionCapture checked
        weights = [w.detach() for w in capture.weights()]
        return AttentionMaps(weights, grads, layout.prefix, layout.grid(capture.size))


class AttentionCapture:
    """Keep each block's attention weights during a forward pass: ``sources`` (what a gradient
    is taken with respect to) and :meth:`weights` (each (B, H, N, N)), in the order the blocks
    ran. Raises ``ValueError`` naming the model when its attention cannot be read."""

    def __init__(self, model: nn.Module) -> None:
        why = global_attention(model)
        if why is not None:
            raise ValueError(f"cannot read attention: {why}")
        self.model = model
        self.modules = attention_modules(model)
        self.sources: list[torch.Tensor] = []
        self.size: tuple[int, int] | None = None  # the input's (H, W)
        self._shapes: list[tuple[int, int, int, int]] = []
        self._handles: list[RemovableHandle] = []
        self._fused: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> AttentionCapture:
        self.sources.clear()
        self._shapes.clear()
        try:
            self._handles.append(self.model.register_forward_pre_hook(self._input))
            for _, module in self.modules:
                if isinstance(module, nn.MultiheadAttention):
                    self._handles.append(
                        module.register_forward_pre_hook(_ask_weights, with_kwargs=True)
                    )
                    self._handles.append(module.register_forward_hook(self._mha))
                else:
                    self._fused.append((module, bool(module.fused_attn)))
                    module.fused_attn = False  # type: ignore[assignment]
                    drop: nn.Module = module.attn_drop  # type: ignore[assignment]
                    self._handles.append(drop.register_forward_hook(self._timm))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _input(self, model: nn.Module, args: tuple[Any, ...]) -> None:
        self.size = input_size(args) or self.size

    def _timm(self, module: nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
        kept = output.view_as(output)  # a node of its own: the gradient reaches it alone
        self.sources.append(kept)
        self._shapes.append(tuple(kept.shape))  # type: ignore[arg-type]
        return kept

    def _mha(self, module: nn.Module, args: object, output: Any) -> None:
        weights = output[1]
        if not isinstance(weights, torch.Tensor) or weights.dim() != 4:
            raise ValueError(f"{type(self.model).__name__}'s attention gave no weights per head")
        base = weights._base if weights._base is not None else weights
        self.sources.append(base)
        self._shapes.append(tuple(weights.shape))  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, fused in self._fused:
            module.fused_attn = fused  # type: ignore[assignment]
        self._fused.clear()

    def weights(self) -> list[torch.Tensor]:
        """Each block's attention (B, H, N, N), rows summing to one, in the graph; refused
        where a module ran other than once, or gave what are not attention probabilities."""
        if len(self.sources) != len(self.modules):
            raise ValueError(
                f"{len(self.modules)} attention modules gave {len(self.sources)} attention "
                "maps in one forward pass: each must run once"
            )
        found = [s.reshape(shape) for s, shape in zip(self.sources, self._shapes, strict=True)]
        rows = found[0][:1, :1].sum(-1)
        if not torch.allclose(rows, torch.ones_like(rows), atol=1e-3):
            raise ValueError("the attention read is not a softmax over keys (rows do not sum to 1)")
        return found

    def gradients(self, grads: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """The gradients with respect to :attr:`sources` (None: unused) shaped as
        :meth:`weights`."""
        return [
            torch.zeros(shape, device=s.device, dtype=s.dtype) if g is None else g.reshape(shape)
            for g, s, shape in zip(grads, self.sources, self._shapes, strict=True)
        ]


def _ask_weights(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Ask ``nn.MultiheadAttention`` for its weights per head, whatever its caller asked."""
    given = list(args)
    for place, key, value in ((4, "need_weights", True), (6, "average_attn_weights", False)):
        if len(given) > place:  # given by position
            given[place] = value
        else:
            kwargs[key] = value
    return tuple(given), kwargs
