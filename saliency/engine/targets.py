"""Which classes to explain: per-sample targets for the engine, and target specs for folder runs
(``top1``, ``topk:N``, a class index or a class name; for a segmentation model, every class
present in each image)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .objectives import RegionTarget, SimilarityTarget, Target, classifier_output

TargetLike = int | Sequence[int] | torch.Tensor | None


def resolve_targets(target: TargetLike, logits: torch.Tensor) -> torch.Tensor:
    """Turn ``target`` into one class index per sample, a LongTensor (B,) on the logits' device.

    ``None`` means each sample's top-1 class; an int one class for all; a sequence or tensor one
    class per sample. Raises ``ValueError`` for a wrong length or an index out of range.
    """
    targets, check = targets_and_check(target, logits)
    check()
    return targets


def targets_and_check(
    target: TargetLike, logits: torch.Tensor
) -> tuple[torch.Tensor, Callable[[], None]]:
    """The targets, and the range check to run. For a tensor already on a GPU the check is left to
    the caller to run once the backward pass is queued (checking at once would stall the GPU),
    and the indices are clamped meanwhile so that a bad one cannot fault the device."""
    batch, classes = classifier_output(logits).shape
    if target is None:
        return logits.detach().argmax(dim=1), lambda: None
    if isinstance(target, bool):
        raise ValueError("target must be None, an int or a sequence of ints, not a bool")
    if isinstance(target, int):
        targets = torch.full((batch,), target, dtype=torch.long)
    else:
        if isinstance(target, torch.Tensor):
            dtype = target.dtype
            if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
                raise ValueError(f"target tensor must hold integers, not {target.dtype}")
            targets = target.detach().reshape(-1).long()
        else:
            values = list(target)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ValueError("target must be None, an int or a sequence of ints")
            targets = torch.tensor(values, dtype=torch.long)
        if targets.numel() != batch:
            raise ValueError(f"target has {targets.numel()} entries for a batch of {batch}")

    def check(targets: torch.Tensor = targets) -> None:
        bad = (targets < 0) | (targets >= classes)
        if bool(bad.any()):
            raise ValueError(
                f"target {int(targets[bad][0])} is out of range: valid classes are 0..{classes - 1}"
            )

    if targets.device.type == "cpu":
        check()
        return targets.to(logits.device), lambda: None
    return targets.to(logits.device).clamp(0, classes - 1), check


SIMILARITY_KINDS = ("similar", "different")
FOUND = "*"  # a plan's suffix for "the targets this image turns out to have"


@dataclass(frozen=True)
class TargetSpec:
    """What to explain in a folder run: ``top1``, the ``k`` best (``topk``), one ``class``
    index; or, for an embedding model, the similarity to a reference embedding (``similar``)
    or 1 - it (``different``), the reference named and hashed for the manifest and the
    fingerprint; or, for a segmentation model, each class ``present`` in an image (the model
    assigns it some pixels), but those in ``ignore`` (its background): how many pictures an
    image gets is then known only once the model has seen it."""

    kind: str = "top1"
    k: int = 1
    index: int = 0
    reference: torch.Tensor | None = field(default=None, compare=False, repr=False)
    reference_name: str = ""
    reference_sha256: str = ""
    region: bool = False  # a segmentation's class: over the pixels the model assigns to it
    ignore: tuple[int, ...] = ()  # classes never "present" (a segmentation's background)
    min_score: float = 0.5  # a detector's: the detections explained, up to k of them
    box_normalize: bool = False  # a detector's maps renormalised inside each box

    @property
    def is_similarity(self) -> bool:
        return self.kind in SIMILARITY_KINDS

    @property
    def found(self) -> bool:
        """Whether an image's targets are found in the model's output (so its pictures are
        known only then): each class present in a segmentation, each detection of a
        detector."""
        return self.kind in ("present", "detections")

    @property
    def detections(self) -> bool:
        """Whether it explains a detector's detections, each over its box."""
        return self.kind == "detections"

    @property
    def nothing(self) -> str:
        """What a row of an image where nothing was found says."""
        if self.detections:
            return f"no detection scored {self.min_score:g} or more"
        return "no class present but the background"

    def present(self, logits: torch.Tensor) -> list[list[int]]:
        """Per image of a segmentation's output (B, C, H, W), the classes the model assigns
        some pixel to, in index order, but the ignored ones; of a detector's (B, N, 6), the
        rows of its detections scored ``min_score`` or more, the ``k`` best."""
        if self.detections:
            from ..models.detection import SCORE

            kept = (logits[..., SCORE] >= self.min_score).cpu()
            return [row.nonzero()[:, 0].tolist()[: self.k] for row in kept]
        shown = pixel_counts(logits).cpu() > 0
        return [[c for c in row.nonzero()[:, 0].tolist() if c not in self.ignore] for row in shown]

    def found_suffix(self, found: int) -> str:
        """The output-name part of a target found in an image: a class's index, or a
        detection's rank (``box1`` for the best)."""
        return f"box{found + 1}" if self.detections else str(found)

    def name(self, index: int, categories: list[str]) -> str:
        """What a picture explains, in words: the class's name, or the similarity."""
        if self.is_similarity:
            return f"{'similar to' if self.kind == 'similar' else 'different from'} " + (
                self.reference_name
            )
        return categories[index]

    def describe(self) -> dict[str, Any]:
        """What the pictures depend on beyond their names (the reference's content; which
        detections, and how their maps are scaled)."""
        if self.detections:
            return {
                "kind": self.kind,
                "min_score": self.min_score,
                "max_detections": self.k,
                "per_box_normalize": self.box_normalize,
            }
        return {"kind": self.kind, "reference_sha256": self.reference_sha256}

    def suffixes(self) -> list[str]:
        """The output-name part for each target: none for top1, ``topN``, the class index, or
        ``similar`` / ``different``; for targets found per image, :data:`FOUND` (each picture's
        is then its class index)."""
        if self.found:
            return [FOUND]
        if self.is_similarity:
            return [self.kind]
        if self.kind == "top1":
            return [""]
        if self.kind == "topk":
            return [f"top{rank}" for rank in range(1, self.k + 1)]
        return [str(self.index)]

    def similarity(self) -> SimilarityTarget:
        """The similarity target of a ``similar`` or ``different`` spec."""
        if not self.is_similarity or self.reference is None:
            raise ValueError(f"a {self.kind} target has no reference embedding")
        return SimilarityTarget(self.reference, self.kind == "different")

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        """One LongTensor (B,) per target rank, or the similarity target; for classes present,
        one region target per rank: each image's r-th class (images with fewer repeat their
        first, and those maps are dropped: see :meth:`ranked`)."""
        if self.detections:
            return [_boxes_at(logits, rows) for rows in self.ranked(self.present(logits))]
        if self.found:
            per_rank = self.ranked(self.present(logits))
            return [RegionTarget(torch.tensor(r, device=logits.device)) for r in per_rank]
        if self.is_similarity:
            return [self.similarity()]
        if self.region:
            return [RegionTarget(self.index)]
        if self.kind == "class":
            return [torch.full((logits.shape[0],), self.index, device=logits.device)]
        ranked = logits.detach().topk(self.k, dim=1).indices
        return [ranked[:, rank] for rank in range(self.k)]

    def one(self) -> Target | None:
        """The one target per image of a command that shows one (compare, sanity, evaluate):
        None for a classifier's class specs (each command's own class handling); a region
        target for a segmentation's class, or, for classes present, each image's class with
        the most pixels but the ignored ones; the similarity for an embedding."""
        if self.detections:
            return TopDetection()
        if self.found:
            return MainRegion(self.ignore)
        if self.region:
            return RegionTarget(self.index)
        if self.is_similarity:
            return self.similarity()
        return None

    @staticmethod
    def ranked(present: list[list[int]]) -> list[list[int]]:
        """Per rank, each image's class of that rank among ``present``: images with fewer
        classes repeat their first (0 if none), a map no picture is made of."""
        ranks = max((len(p) for p in present), default=0)
        return [[p[r] if r < len(p) else (p[0] if p else 0) for p in present] for r in range(ranks)]


def pixel_counts(logits: torch.Tensor) -> torch.Tensor:
    """Per image of a segmentation's output (B, C, H, W), how many pixels the model assigns to
    each class (its argmax): a LongTensor (B, C)."""
    assigned = logits.detach().argmax(dim=1).flatten(1)  # (B, H*W)
    counts = torch.zeros(
        assigned.shape[0], logits.shape[1], device=assigned.device, dtype=torch.long
    )
    return counts.scatter_add_(1, assigned, torch.ones_like(assigned))


class MainRegion(Target):
    """Each image's main class over its region: the class the model assigns the most pixels
    to on the clean input, leaving out those in ``ignore`` (its background) unless it assigns
    nothing else. Bound once on the clean output, as a :class:`RegionTarget`."""

    kind = "region"

    def __init__(self, ignore: tuple[int, ...] = ()) -> None:
        self.ignore = ignore

    def bind(self, output: torch.Tensor) -> Target:
        from .objectives import model_output

        counts = pixel_counts(model_output(output))
        others = counts.clone()
        others[:, list(self.ignore)] = -1
        main = torch.where(others.max(dim=1).values > 0, others.argmax(dim=1), counts.argmax(dim=1))
        return RegionTarget(main).bind(output)

    def score(self, output: torch.Tensor) -> torch.Tensor:
        raise ValueError("a MainRegion target must be bound to the clean output first")


def _boxes_at(logits: torch.Tensor, rows: list[int]) -> Target:
    """Each image's detection in row ``rows[i]`` of a detector's output, as a box target."""
    from ..models.detection import BOX, LABEL
    from .boxes import BoxScoreTarget

    picked = logits.detach()[torch.arange(len(rows)), torch.tensor(rows, dtype=torch.long)]
    return BoxScoreTarget(picked[:, None, BOX], picked[:, None, LABEL].long())


class TopDetection(Target):
    """Each image's best detection (its highest score), bound once on the clean output as a
    :class:`~saliency.BoxScoreTarget`: what compare, sanity and evaluate explain on a
    detector."""

    kind = "box"

    def bind(self, output: torch.Tensor) -> Target:
        from ..models.detection import detections_of

        found = detections_of(output)
        return _boxes_at(found, [0] * found.shape[0]).bind(output)

    def score(self, output: torch.Tensor) -> torch.Tensor:
        raise ValueError("a TopDetection target must be bound to the clean output first")


def parse_target(spec: str, categories: list[str]) -> TargetSpec:
    """``top1``, ``topk:N``, a class index, or a class name (case-insensitive).

    Raises ``ValueError`` for an index out of range, or an unknown or ambiguous name (listing
    close matches).
    """
    classes = len(categories)
    text = spec.strip()
    if text.lower() == "top1":
        return TargetSpec()
    if text.lower().startswith("topk:"):
        count = text[5:]
        if not count.isdigit() or not 1 <= int(count) <= classes:
            raise ValueError(f"topk:N needs N between 1 and {classes}, got {count!r}")
        return TargetSpec("topk", k=int(count))
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < classes:
            raise ValueError(
                f"class index {index} out of range: valid classes are 0..{classes - 1}"
            )
        return TargetSpec("class", index=index)
    lowered = [name.lower() for name in categories]
    hits = [i for i, name in enumerate(lowered) if name == text.lower()]
    if len(hits) == 1:
        return TargetSpec("class", index=hits[0])
    if hits:
        listed = ", ".join(f"{i} ({categories[i]})" for i in hits)
        raise ValueError(f"class name {spec!r} is ambiguous: give the index, one of {listed}")
    close = difflib.get_close_matches(text.lower(), lowered, n=5, cutoff=0.6)
    close += [n for n in lowered if text.lower() in n and n not in close][: 5 - len(close)]
    hint = (
        "; close matches: "
        + ", ".join(f"{categories[lowered.index(n)]!r} ({lowered.index(n)})" for n in close)
        if close
        else ""
    )
    raise ValueError(f"unknown class name {spec!r}{hint}")
