"""Embeddings: a classifier with its head removed, (B, D); a picture per image for its
similarity to a reference photo's embedding (or 1 - it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .kind import Kind, Loaded, Request
from .plan import Records, TargetPlan
from .registry import check_request, register_kind

if TYPE_CHECKING:
    import os

    import numpy as np
    from torch import nn

    from ..engine.objectives import SimilarityTarget, Target
    from ..geometry import Geometry


@dataclass(frozen=True)
class SimilarityPlan(TargetPlan):
    """The similarity of each image's embedding to ``reference`` (``similar``), or 1 - it
    (``different``); the reference named and hashed for the fingerprint."""

    kind: str = "similar"
    reference: torch.Tensor | None = field(default=None, compare=False, repr=False)
    reference_name: str = ""
    reference_sha256: str = ""
    reference_path: Path | None = field(default=None, compare=False, repr=False)

    def as_run(self, output: Callable[[Path], torch.Tensor]) -> SimilarityPlan:
        """The reference embedded as the run embeds its photos (on the device pipeline, decoded
        and resampled there), so that a photo against itself scores 1."""
        if self.reference_path is None:
            return self
        return replace(self, reference=output(self.reference_path)[0].detach())

    def similarity(self) -> SimilarityTarget:
        from ..engine.objectives import SimilarityTarget

        if self.reference is None:
            raise ValueError("a similarity plan has no reference embedding")
        return SimilarityTarget(self.reference, self.kind == "different")

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        return [self.similarity()]

    def suffixes(self) -> list[str]:
        return [self.kind]

    def name(self, index: int, categories: list[str]) -> str:
        verb = "similar to" if self.kind == "similar" else "different from"
        return f"{verb} {self.reference_name}"

    def fingerprint(self) -> dict[str, Any]:
        return {"target": {"kind": self.kind, "reference_sha256": self.reference_sha256}}

    def one(self) -> Target | None:
        return self.similarity()

    def records(
        self, logits: torch.Tensor, size: tuple[int, int], rows: list[int] | None,
        geometries: list[Geometry], categories: list[str],
    ) -> Records:  # fmt: skip
        scores = self.similarity().score(logits.float()).cpu().tolist()
        return Records([None] * len(scores), [{"similarity": round(s, 6)} for s in scores])

    def panel(
        self, logits: torch.Tensor, index: int, size: tuple[int, int], categories: list[str]
    ) -> tuple[str, np.ndarray | None]:
        score = float(self.similarity().score(logits.float())[0])
        return f"{self.name(index, categories)} ({score:.3f})", None


@register_kind
class Embedding(Kind):
    name = "embedding"
    summary = "a classifier without its head, (B, D): the similarity to a reference photo"
    order = 40
    takes = frozenset({"reference"})
    implied_by = frozenset({"reference"})
    made_from = ("classification",)

    def finish(self, model: nn.Module, categories: list[str]) -> tuple[nn.Module, list[str]]:
        from ..models.zoo import remove_head

        return remove_head(model), []

    def plan(self, loaded: Loaded, request: Request) -> SimilarityPlan:
        if "target" in request.given():
            raise ValueError("--target names a class; with --similar-to or --different-from "
                             "the pictures explain the similarity")  # fmt: skip
        check_request(self, loaded, request)
        if request.reference is None:
            raise ValueError(
                f"{loaded.name} is an embedding model: its pictures explain the similarity to "
                "a photo; give --similar-to or --different-from"
            )
        return similarity_plan(loaded, request.reference, request.different, request.fit)


def similarity_plan(
    loaded: Loaded,
    reference: str | os.PathLike[str],
    different: bool = False,
    fit: str | None = None,
) -> SimilarityPlan:
    """The similarity of each photo's embedding to ``reference``'s (a photo, decoded and
    preprocessed as a run's photos are on the CPU: a JPEG at the reduced DCT scale that loses
    nothing), or 1 - it with ``different``. Raises :class:`~saliency.errors.ImageError` for a
    photo that cannot be read."""
    from ..files.images import load_image
    from ..files.sources import read_regular

    data, source = read_regular(reference)
    reduce_for = partial(loaded.preprocessing.source_size, fit=fit)
    image = load_image(reference, reduce_for, data=data)
    x, _ = loaded.preprocessing(image, fit)
    with torch.no_grad():
        embedding = loaded.model(x[None].to(loaded.device))[0].detach()
    kind = "different" if different else "similar"
    return SimilarityPlan(kind, embedding, Path(reference).name, source.sha256, Path(reference))
