"""Detectors: a :class:`~saliency.Detector`'s detections (B, N, 6); a picture per detection
scored ``--min-score`` or more (the ``--max-detections`` best), each explained through its box
(a :class:`~saliency.BoxScoreTarget`), the box and label drawn on the picture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..engine.detections import BOX, LABEL, SCORE, box_mask, detections_of
from ..engine.objectives import BoundOnClean, Target
from .kind import BOX_TARGETS, FEATURE_LAYER, RELU_UNITS, Kind, Loaded, Request
from .plan import Decoration, Records, TargetPlan
from .registry import check_request, register_kind

if TYPE_CHECKING:
    import os

    import numpy as np
    from torch import nn

    from ..geometry import Geometry
    from ..models.preprocess import Preprocessing


@dataclass(frozen=True)
class DetectionsPlan(TargetPlan):
    """Each detection scored ``min_score`` or more, the ``k`` best, each over its box
    (optionally renormalised inside it: ``box_normalize``)."""

    found = True
    each = "detection"
    k: int = 10
    min_score: float = 0.5
    box_normalize: bool = False

    def targets(self, logits: torch.Tensor) -> list[torch.Tensor | Target]:
        return self.found_targets(logits, lambda rows: boxes_at(logits, rows))

    def present(self, logits: torch.Tensor) -> list[list[int]]:
        """Per image, the rows of its detections scored ``min_score`` or more, the ``k`` best;
        the padding rows of a :class:`~saliency.Detector`'s output never."""
        real = logits[..., LABEL] >= 0  # padding (label -1, score 0) is never a detection
        kept = ((logits[..., SCORE] >= self.min_score) & real).cpu()
        return [row.nonzero()[:, 0].tolist()[: self.k] for row in kept]

    def found_suffix(self, found: int) -> str:
        return f"box{found + 1}"  # a detection's rank, box1 the best

    @property
    def nothing(self) -> str:
        return f"no detection scored {self.min_score:g} or more"

    def fingerprint(self) -> dict[str, Any]:
        described = {
            "kind": "detections",
            "min_score": self.min_score,
            "max_detections": self.k,
            "per_box_normalize": self.box_normalize,
        }
        return {"target": described, "outline": "box"}

    def one(self) -> Target | None:
        return TopDetection()

    def records(
        self, logits: torch.Tensor, size: tuple[int, int], rows: list[int] | None,
        geometries: list[Geometry], categories: list[str],
    ) -> Records:  # fmt: skip
        """A detection's score, its box on the photo, label and score for the row, and its box
        as a mask to cut to and draw."""
        assert rows is not None
        picked = logits[torch.arange(len(rows)), torch.tensor(rows, dtype=torch.long)]
        picked = picked.float().cpu()
        masks = torch.stack([box_mask(detection[BOX], size) for detection in picked])
        keys = []
        for detection, geometry in zip(picked, geometries, strict=True):
            label = int(detection[LABEL])
            keys.append({
                "box": _on_photo(tuple(detection[BOX].tolist()), geometry),
                "label": categories[label] if label < len(categories) else f"class {label}",
                "score": round(float(detection[SCORE]), 6),
            })  # fmt: skip
        scores: list[float | None] = [round(float(d[SCORE]), 6) for d in picked]
        return Records(scores, keys, masks.to(logits.device))

    def adjust(
        self, maps: torch.Tensor, records: Records, extras: list[dict[str, Any]]
    ) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        """Each map's share of its positive part inside its detection's box, for the row;
        with ``box_normalize``, the map itself cut to the box and scaled there from 0 to 1 (the
        peers' tutorials' per-box renormalisation)."""
        if records.regions is None:
            return maps, extras
        inside = records.regions.to(maps.device)[:, None].expand_as(maps)
        positive = maps.clamp(min=0)
        total = positive.flatten(1).sum(dim=1)
        share = (positive * inside).flatten(1).sum(dim=1) / total.clamp(min=1e-12)
        shares = [round(float(s), 6) if t > 0 else None for s, t in zip(share, total, strict=True)]
        extras = [{**e, "box_share": s} for e, s in zip(extras, shares, strict=True)]
        if self.box_normalize:
            big = torch.finfo(maps.dtype).max
            low = torch.where(inside, maps, big).flatten(1).amin(dim=1).view(-1, 1, 1, 1)
            high = torch.where(inside, maps, -big).flatten(1).amax(dim=1).view(-1, 1, 1, 1)
            scaled = (maps - low) / (high - low).clamp(min=1e-12)
            maps = torch.where(inside, scaled, torch.zeros_like(maps))
        return maps, extras

    def decoration(self, extra: dict[str, Any], region: np.ndarray | None) -> Decoration:
        caption = f"{extra.get('label')} {float(extra.get('score') or 0):.2f}"
        return Decoration(box=tuple(extra["box"]), label=caption)

    def panel(
        self, logits: torch.Tensor, index: int, size: tuple[int, int], categories: list[str]
    ) -> tuple[str, np.ndarray | None]:
        """Its best detection, the box outlined."""
        best = logits[0, 0].float().cpu()
        if int(best[LABEL]) < 0:
            return "no detection", None
        name = self.name(int(best[LABEL]), categories)
        return f"{name} ({float(best[SCORE]):.2f})", box_mask(best[BOX], size).numpy()


def _on_photo(box: tuple[float, ...], geometry: Geometry) -> list[float]:
    """A box in the model's input pixels, in the photo's pixels (rounded to 0.1)."""
    left, top, right, bottom = geometry.box
    sx = (right - left) / geometry.input_size[0]
    sy = (bottom - top) / geometry.input_size[1]
    x1, y1, x2, y2 = box
    return [round(v, 1) for v in (left + x1 * sx, top + y1 * sy, left + x2 * sx, top + y2 * sy)]


def boxes_at(logits: torch.Tensor, rows: list[int]) -> Target:
    """Each image's detection in row ``rows[i]`` of a detector's output, as a box target."""
    from ..engine.boxes import BoxScoreTarget

    picked = logits.detach()[torch.arange(len(rows)), torch.tensor(rows, dtype=torch.long)]
    return BoxScoreTarget(picked[:, None, BOX], picked[:, None, LABEL].long())


class TopDetection(BoundOnClean):
    """Each image's best detection (its highest score), bound once on the clean output as a
    :class:`~saliency.BoxScoreTarget`: what compare, sanity and evaluate explain on a
    detector."""

    kind = "box"
    locates = True

    def bind(self, output: torch.Tensor) -> Target:
        found = detections_of(output)
        return boxes_at(found, [0] * found.shape[0]).bind(output)



@register_kind
class Detection(Kind):
    name = "detection"
    summary = "a Detector's detections (B, N, 6): each detection above a score, over its box"
    order = 30
    provides = frozenset({BOX_TARGETS, FEATURE_LAYER, RELU_UNITS})
    takes = frozenset({"min_score", "max_detections", "per_box_normalize"})
    device_pipeline = False  # its boxes and labels are drawn with Pillow
    loads_weights = True  # into the wrapped detector
    untuned = "a detector's pass is not tuned (its backbone's batch norms are frozen already)"
    metrics = (*Kind.metrics, "pointing_game")

    def recognizes(self, source: str, arch: str) -> bool:
        from ..models.detection import detection_names

        return source == "torchvision" and arch in detection_names()

    def build(
        self, source: str, arch: str, tag: str | None, weights: str | os.PathLike[str] | None
    ) -> tuple[nn.Module, Preprocessing, list[str]]:
        from ..models.detection import build_detector, load_detector_state

        wrapped, prep, categories = build_detector(arch, tag, pretrained=weights is None)
        if weights is not None and str(weights) != "random":
            load_detector_state(wrapped, weights)
        return wrapped, prep, categories

    def plan(self, loaded: Loaded, request: Request) -> DetectionsPlan:
        if "target" in request.given():
            raise ValueError(
                f"{loaded.name} is a detector: it explains each detection (--min-score, "
                "--max-detections), not a class named with --target"
            )
        check_request(self, loaded, request)
        return DetectionsPlan(
            k=10 if request.max_detections is None else request.max_detections,
            min_score=0.5 if request.min_score is None else request.min_score,
            box_normalize=request.per_box_normalize,
        )
