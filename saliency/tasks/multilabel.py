"""Multi-label classifiers: logits (B, K) read through a sigmoid per class, not a softmax; a
picture per class scored ``--min-score`` (0.5) or more in each image. Load a classifier as one
with ``--kind multilabel`` (``load_model(..., kind="multilabel")``).

A kind in one file: it is the example of docs/writing-a-method.md's "Writing a kind of model".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..engine.objectives import BoundOnClean, ClassTarget, Target
from .kind import CLASS_LOGITS, FEATURE_LAYER, LAYER_RULES, RELU_UNITS, Kind, Loaded, Request
from .plan import Records, TargetPlan
from .registry import check_request, register_kind

if TYPE_CHECKING:
    import numpy as np

    from ..geometry import Geometry


class LabelTarget(ClassTarget):
    """A class per sample of a multi-label classifier: its logit, its sigmoid the confidence."""

    def confidence(self, output: torch.Tensor) -> torch.Tensor:
        return output.float().sigmoid().gather(1, self._column(output))[:, 0]

    def select(self, rows: torch.Tensor) -> LabelTarget:
        if isinstance(self.indices, int):
            return self
        return LabelTarget(self.indices.to(rows.device)[rows])


class TopLabel(BoundOnClean):
    """Each image's most likely class, bound once on the clean output as a :class:`LabelTarget`:
    what compare, sanity and evaluate explain."""

    kind = "class"

    def bind(self, output: torch.Tensor) -> Target:
        return LabelTarget(output.detach().argmax(dim=1))



@dataclass(frozen=True)
class AbovePlan(TargetPlan):
    """Each class whose sigmoid is ``min_score`` or more, a picture each."""

    found = True
    each = "label"
    min_score: float = 0.5

    def present(self, logits: torch.Tensor) -> list[list[int]]:
        above = (logits.detach().float().sigmoid() >= self.min_score).cpu()
        return [row.nonzero()[:, 0].tolist() for row in above]

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        def label(classes: list[int]) -> Target:  # its logit; its sigmoid the confidence
            return LabelTarget(torch.tensor(classes, dtype=torch.long, device=logits.device))

        return self.found_targets(logits, label)

    @property
    def nothing(self) -> str:
        return f"no class scored {self.min_score:g} or more"

    def fingerprint(self) -> dict[str, Any]:
        # the confidence a perturbation method weighs by: the sigmoid (it was the softmax)
        return {"target": {"kind": "above", "min_score": self.min_score, "confidence": "sigmoid"}}

    def one(self) -> Target | None:
        return TopLabel()

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor | None:
        return logits.float().sigmoid().cpu()

    def records(
        self, logits: torch.Tensor, size: tuple[int, int], rows: list[int] | None,
        geometries: list[Geometry], categories: list[str],
    ) -> Records:  # fmt: skip
        assert rows is not None
        chosen = logits.float().sigmoid()[torch.arange(len(rows)), torch.tensor(rows)]
        return Records([round(float(p), 6) for p in chosen.cpu()])

    def panel(
        self, logits: torch.Tensor, index: int, size: tuple[int, int], categories: list[str]
    ) -> tuple[str, np.ndarray | None]:
        probability = float(logits.float().sigmoid()[0, index])
        return f"{categories[index]} ({probability:.1%})", None


@register_kind
class MultiLabel(Kind):
    name = "multilabel"
    summary = "logits (B, K), a sigmoid per class: every class scored --min-score or more"
    order = 15
    provides = frozenset({CLASS_LOGITS, FEATURE_LAYER, RELU_UNITS, LAYER_RULES})
    takes = frozenset({"min_score"})
    made_from = ("classification",)
    metrics = ("deletion", "insertion", "road_morf", "road_lerf")  # no softmax to contrast

    def plan(self, loaded: Loaded, request: Request) -> AbovePlan:
        if "target" in request.given():
            raise ValueError(f"{loaded.name} is a multi-label classifier: it explains every "
                             "class scored --min-score or more, not --target")  # fmt: skip
        check_request(self, loaded, request)
        if request.min_score is not None and not 0 < request.min_score < 1:
            raise ValueError(f"--min-score is a sigmoid's, in (0, 1); got {request.min_score}")
        return AbovePlan(0.5 if request.min_score is None else request.min_score)
