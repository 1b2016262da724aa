"""What a folder run explains in each image: a plan, made by the model's kind from the request.

The pipeline, ``compare``, the fingerprint and the ledger ask the plan, never which kind of model
it is: the targets of each batch (one per rank), each picture's name part, what each row records
beyond the method's keys, what is drawn on the picture, and what the fingerprint holds.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    import numpy as np

    from ..engine.objectives import Target
    from ..geometry import Geometry

FOUND = "*"  # a plan's suffix for "the targets this image turns out to have"


@dataclass
class Records:
    """What each image's rows of one rank record beside the method's keys: its number (None
    per image where it has none; None for all: the class's probability, as the plan's
    :meth:`~TargetPlan.probabilities` give it), extra keys per image, and a mask (B, h, w) at
    the model's input size per image (a region to outline, a box to cut to)."""

    chosen: list[float | None] | None = None
    keys: list[dict[str, Any]] | None = None
    regions: torch.Tensor | None = None


@dataclass(frozen=True)
class Decoration:
    """What is drawn on a picture over the map: a region's outline (h, w) at the model's input
    size, or a box on the photo with its label."""

    outline: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    label: str | None = None


class TargetPlan:
    """What to explain in each image of a folder run; one subclass per way a kind explains.

    Attributes:
        found: Whether an image's targets are found in the model's output (a segmentation's
            classes present, a detector's detections): its pictures are known only then.
        one_per_image: Whether it explains one target per image (``compare``, ``sanity`` and
            ``evaluate`` show one; ``topk`` is refused there).
        each: What an image may hold many of, each explained (``detection``), for the cost a
            run states; None: a set number per image.
    """

    found: ClassVar[bool] = False
    one_per_image: ClassVar[bool] = True
    each: ClassVar[str | None] = None  # what an image may hold many of, each explained

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        """One target per rank for a batch: a LongTensor (B,) of classes, or a target."""
        raise NotImplementedError

    def suffixes(self) -> list[str]:
        """The output-name part of each rank's pictures; :data:`FOUND` where they are found."""
        return [FOUND] if self.found else [""]

    def name(self, index: int, categories: list[str]) -> str:
        """What a picture explains, in words."""
        return categories[index]

    def fingerprint(self) -> dict[str, Any]:
        """What the pictures depend on beyond their names, for the fingerprint."""
        return {}

    def one(self) -> Target | None:
        """The one target per image of ``compare``, ``sanity`` and ``evaluate``; None: each
        image's top-1 class (their own class handling)."""
        return None

    def as_run(self, output: Callable[[Path], torch.Tensor]) -> TargetPlan:
        """The plan with any photo it holds (a reference) passed through the model as the run
        reads, decodes and prepares its photos: ``output(path)`` is the model's output (1, ...)
        for it. As it is by default."""
        return self

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor | None:
        """Per image, each class's probability (B, K) on the CPU for the rows' ``top5``; None
        where the output has no classes to rank."""
        return None

    def records(
        self, logits: torch.Tensor, size: tuple[int, int], rows: list[int] | None,
        geometries: list[Geometry], categories: list[str],
    ) -> Records:  # fmt: skip
        """What each image's rows of one rank record (``rows``: each image's target found at
        this rank, for a plan that finds them), at the model's input ``size``."""
        return Records()

    def adjust(
        self, maps: torch.Tensor, records: Records, extras: list[dict[str, Any]]
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """The maps and the rows' keys, changed as the plan says (a detection's share inside
        its box); as they are by default."""
        return maps, extras

    def decoration(self, extra: dict[str, Any], region: np.ndarray | None) -> Decoration:
        """What a picture draws over its map: the region outlined, if any."""
        return Decoration(outline=region)

    def panel(
        self, logits: torch.Tensor, index: int, size: tuple[int, int], categories: list[str]
    ) -> tuple[str, np.ndarray | None]:
        """``compare``'s panel: what it explains in words with its number, and a region to
        outline (or None), for one image's output."""
        raise NotImplementedError

    # targets found per image (``found``)
    def present(self, logits: torch.Tensor) -> list[list[int]]:
        """Per image, the targets found in the output, in order."""
        raise NotImplementedError(f"{type(self).__name__} finds no targets")

    def found_suffix(self, found: int) -> str:
        """The output-name part of a target found in an image."""
        return str(found)

    @property
    def nothing(self) -> str:
        """What a row of an image where nothing was found says."""
        return "nothing found"

    def found_targets(
        self, logits: torch.Tensor, make: Callable[[list[int]], Target]
    ) -> list[torch.Tensor | Target]:
        """:meth:`targets` of a plan that finds them: per rank, ``make`` of each image's target
        of that rank (see :meth:`ranked`), marking which images have one (``present``), so
        that methods with passes of their own do no work for the others."""
        present = self.present(logits)
        targets: list[torch.Tensor | Target] = []
        for rank, found in enumerate(self.ranked(present)):
            target = make(found)
            target.present = torch.tensor(
                [rank < len(p) for p in present], dtype=torch.bool, device=logits.device
            )
            targets.append(target)
        return targets

    @staticmethod
    def ranked(present: list[list[int]]) -> list[list[int]]:
        """Per rank, each image's target of that rank among ``present``: images with fewer
        repeat their first (0 if none), a map no picture is made of."""
        ranks = max((len(p) for p in present), default=0)
        return [[p[r] if r < len(p) else (p[0] if p else 0) for p in present] for r in range(ranks)]


@dataclass(frozen=True)
class ClassChoice:
    """A ``--target`` as written: ``top1``, ``topk`` (``k``) or one ``class`` (``index``)."""

    kind: str = "top1"
    k: int = 1
    index: int = 0


FEW_CLASSES = 40  # an unknown name lists them all up to this many


def close_classes(text: str, categories: list[str], count: int = 6) -> list[int]:
    """The classes a name may have meant, best first: those that hold it as a word (``cat``:
    ``tiger cat``, ``Persian cat``), then as a part of a word, then those spelled alike."""
    wanted = text.strip().lower()
    lowered = [name.lower() for name in categories]
    words = [i for i, n in enumerate(lowered) if wanted in n.replace(",", " ").split()]
    parts = [i for i, n in enumerate(lowered) if wanted in n and i not in words]
    alike = [
        lowered.index(n) for n in difflib.get_close_matches(wanted, lowered, n=count, cutoff=0.6)
    ]
    found: list[int] = []
    for i in [*words, *parts, *alike]:
        if i not in found:
            found.append(i)
    return found[:count]


def parse_class(spec: str, categories: list[str]) -> ClassChoice:
    """``top1``, ``topk:N``, a class index, or a class name (case-insensitive).

    Raises ``ValueError`` for an index out of range, or an unknown or ambiguous name (listing
    close matches).
    """
    classes = len(categories)
    text = spec.strip()
    if text.lower() == "top1":
        return ClassChoice()
    if text.lower().startswith("topk:"):
        count = text[5:]
        if not count.isdigit() or not 1 <= int(count) <= classes:
            raise ValueError(f"topk:N needs N between 1 and {classes}, got {count!r}")
        return ClassChoice("topk", k=int(count))
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < classes:
            raise ValueError(
                f"class index {index} out of range: valid classes are 0..{classes - 1}"
            )
        return ClassChoice("class", index=index)
    lowered = [name.lower() for name in categories]
    hits = [i for i, name in enumerate(lowered) if name == text.lower()]
    if len(hits) == 1:
        return ClassChoice("class", index=hits[0])
    if hits:
        listed = ", ".join(f"{i} ({categories[i]})" for i in hits)
        raise ValueError(f"class name {spec!r} is ambiguous: give the index, one of {listed}")
    if classes <= FEW_CLASSES:  # a few: all of them
        listed = ", ".join(f"{i} ({name})" for i, name in enumerate(categories))
        raise ValueError(f"unknown class name {spec!r}; the {classes} classes: {listed}")
    hint = ""
    close = close_classes(text, categories)
    if close:
        hint = "; did you mean " + ", ".join(f"{categories[i]!r} ({i})" for i in close) + "?"
    raise ValueError(f"unknown class name {spec!r}{hint}")
