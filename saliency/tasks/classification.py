"""Classifiers: logits (B, K); a picture per image for its top-1 class, each of its top k, or
one class named; the softmax is the confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .kind import CLASS_LOGITS, FEATURE_LAYER, LAYER_RULES, RELU_UNITS, Kind, Loaded, Request
from .plan import TargetPlan, parse_class
from .registry import check_request, register_kind

if TYPE_CHECKING:
    import numpy as np

    from ..engine.objectives import Target


@dataclass(frozen=True)
class ClassPlan(TargetPlan):
    """Each image's top-1 class (``top1``), its ``k`` best (``topk``), or one ``class``
    (``index``) for all."""

    kind: str = "top1"
    k: int = 1
    index: int = 0

    @property
    def one_per_image(self) -> bool:  # type: ignore[override]
        return self.kind != "topk"

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        if self.kind == "class":
            return [torch.full((logits.shape[0],), self.index, device=logits.device)]
        ranked = logits.detach().topk(self.k, dim=1).indices
        return [ranked[:, rank] for rank in range(self.k)]

    def suffixes(self) -> list[str]:
        if self.kind == "top1":
            return [""]
        if self.kind == "topk":
            return [f"top{rank}" for rank in range(1, self.k + 1)]
        return [str(self.index)]

    def one(self) -> Target | None:
        from ..engine.objectives import ClassTarget

        return ClassTarget(self.index) if self.kind == "class" else None

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor | None:
        return logits.float().softmax(dim=1).cpu()

    def panel(
        self, logits: torch.Tensor, index: int, size: tuple[int, int], categories: list[str]
    ) -> tuple[str, np.ndarray | None]:
        probability = float(logits.float().softmax(1)[0, index])
        return f"{categories[index]} ({probability:.1%})", None


@register_kind
class Classification(Kind):
    name = "classification"
    summary = "logits (B, K): each image's top-1 class, its top k, or a class named"
    order = 10
    provides = frozenset({CLASS_LOGITS, FEATURE_LAYER, RELU_UNITS, LAYER_RULES})

    def plan(self, loaded: Loaded, request: Request) -> ClassPlan:
        check_request(self, loaded, request)
        choice = parse_class(request.target, loaded.categories)
        return ClassPlan(choice.kind, k=choice.k, index=choice.index)
