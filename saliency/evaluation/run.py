"""``evaluate``: every metric of every method's maps (and of the baselines) on a set of images.

Images go in batches; each batch's maps come from one shared explanation pass per target set
(:func:`saliency.explain_batch`), each map is ranked once and shared by all metrics, and all
perturbed copies run forward-only (no gradients) in batches of ``batch_size`` on the model's
device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..api import explain_batch
from ..choices import METRICS
from ..engine.boxes import BoxTarget
from ..engine.objectives import ClassTarget, Target, model_output
from ..engine.options import MethodOptions
from ..grouping import by_shape
from ..models.loading import LoadedModel
from ..models.tuning import tuned as tuned_model
from ..models.tuning import tunes
from .metrics import (
    FILLS,
    ROAD_FRACTIONS,
    area,
    deletion_curves,
    fractions,
    pointing_game,
    road_curves,
    spearman,
    substrate,
)
from .ranking import centre_map, pixel_values, random_map, ranks

BASELINES = ("random", "centre")


@dataclass
class Evaluation:
    """Scores (one row per image, method and metric) and curves (one row per point)."""

    images: list[str]
    methods: list[str]  # the methods asked, then the baselines
    metrics: list[str]
    scores: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)

    def values(self, method: str, metric: str) -> list[float]:
        """The scores of ``method`` on ``metric``, in image order."""
        rows = self.scores
        return [float(r["value"]) for r in rows if (r["method"], r["metric"]) == (method, metric)]


# A CPU's forward passes of perturbed copies grow slower per copy beyond a few at a time
# (EfficientNet-Lite0 at 336x224 on 2 cores: 31 ms a copy 4 at a time, 39 at 8, 57 at 21)
CPU_COPIES = 4


@dataclass(frozen=True)
class Protocol:
    """How the metrics perturb and score.

    Attributes:
        steps: Deletion and insertion remove (or add) pixels in this many equal fractions.
        fill: What replaces them: ``blur`` (a blurred copy) or ``mean`` (the mean colour).
        road_fractions: The fractions ROAD removes by noisy linear imputation.
        noise: The s.d. of ROAD's imputation noise.
        contrast: The class that class sensitivity compares the top-1 with (None: the lowest
            of the top 5).
        reduce: How maps become one value per pixel: ``max`` or ``sum`` of |value|.
        seed: Fixes the random map and ROAD's noise.
        batch_size: Images per batch, and perturbed copies per forward pass (on the CPU at
            most :data:`CPU_COPIES`).

    Raises:
        ValueError: An unknown fill, fewer than one step, or a ROAD fraction outside [0, 1).
    """

    steps: int = 20
    fill: str = "blur"
    road_fractions: tuple[float, ...] = ROAD_FRACTIONS
    noise: float = 0.01
    contrast: int | None = None
    reduce: str = "max"
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ValueError(f"unknown fill {self.fill!r}; valid: {', '.join(FILLS)}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        object.__setattr__(self, "road_fractions", tuple(self.road_fractions))
        wrong = [f for f in self.road_fractions if not 0.0 <= f < 1.0]
        if wrong:
            raise ValueError(
                f"ROAD fractions must be in [0, 1), got {wrong}: with every pixel removed, none "
                "is left to impute from"
            )

    def per_pass(self, device: torch.device) -> int:
        """Perturbed copies per forward pass on ``device``."""
        return self.batch_size if device.type != "cpu" else min(self.batch_size, CPU_COPIES)

    def forwards(self, metrics: Sequence[str]) -> int:
        """Forward passes of perturbed copies per image and map (each method's and each
        baseline's) that ``metrics`` take: deletion and insertion a pass per fraction between
        the ends (see :meth:`shared_forwards`), ROAD one per fraction each way; class
        sensitivity a second map instead, the pointing game none."""
        per = {
            "deletion": self.steps - 1,
            "insertion": self.steps - 1,
            "road_morf": len(self.road_fractions),
            "road_lerf": len(self.road_fractions),
        }
        return sum(per.get(metric, 0) for metric in metrics)

    def shared_forwards(self, metrics: Sequence[str]) -> int:
        """Forward passes per image that every map shares: deletion's and insertion's ends,
        the clean image and the substrate."""
        return 2 if {"deletion", "insertion"} & set(metrics) else 0

    def imputations(self, metrics: Sequence[str]) -> int:
        """ROAD's imputations per image and map that ``metrics`` take: one per fraction, each
        way asked for."""
        road = sum(metric in ("road_morf", "road_lerf") for metric in metrics)
        return road * len(self.road_fractions)


def evaluate(
    model: nn.Module | LoadedModel,
    inputs: Sequence[torch.Tensor] | torch.Tensor,
    methods: Sequence[str],
    metrics: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    *,
    protocol: Protocol | None = None,
    options: MethodOptions | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    on_batch: Callable[[int], None] | None = None,
    baselines: Sequence[str] = BASELINES,
    target: Target | None = None,
    tuned: bool | None = None,
) -> Evaluation:
    """Score methods' maps by deletion, insertion, ROAD and class sensitivity, beside baselines.

    The explained class is each image's top-1; or, with ``target``, the target itself (a
    segmentation's class over its region, a similarity): its maps are made for it, and the
    curves score it (:meth:`~saliency.Target.confidence`) on every perturbed copy, against the
    region fixed on the clean photo. Each batch's maps come from one shared
    explanation pass, each map is ranked once for all metrics, and the perturbed copies run
    forward-only. The same ``protocol.seed`` gives the same numbers.

    Args:
        model: The classifier, or a ``LoadedModel`` (whose normalization gives the black
            baseline).
        inputs: Preprocessed inputs, (3, H, W) each, or a batch.
        methods: The methods to score.
        metrics: Any of ``deletion``, ``insertion``, ``road_morf``, ``road_lerf``,
            ``class_sensitivity`` (not with a target) and ``pointing_game`` (a detection's
            box target only); None: all that apply.
        names: A label for each input (default: their indices).
        protocol: How the metrics perturb and score (see
            [Protocol][saliency.evaluation.run.Protocol]).
        options: The methods' settings.
        normalization: (mean, std) of the model's input, for the black baseline.
        on_batch: Told ``on_batch(n)`` of each batch of ``n`` images done.
        baselines: ``random`` and ``centre`` maps, scored like the methods. Leave them out only
            to time the methods alone: without them a score has no scale.
        target: What to explain and score instead of the top-1 class (not with class
            sensitivity, which compares two classes of a classifier).
        tuned: Score the perturbed copies with the model :func:`~saliency.tuned` (1.4x on
            a CPU; probabilities within 1e-6); None: for a ``LoadedModel`` on a CPU whose kind
            allows it. The maps are always the model's own.

    Returns:
        Every score (one row per image, method and metric) and every curve point.

    Raises:
        ValueError: An unknown metric, baseline or method, or a bad setting; ``tuned``
            for a model whose pass is not tuned (a detector).
    """
    protocol = protocol or Protocol()
    if metrics is None:  # all that apply: class sensitivity a classifier's, pointing a box's
        skip = {"class_sensitivity"} if target is not None else set()
        skip |= set() if _boxed(target) else {"pointing_game"}
        metrics = [m for m in METRICS if m not in skip]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric {unknown}; valid: {', '.join(METRICS)}")
    if target is not None and "class_sensitivity" in metrics:
        raise ValueError(
            "class sensitivity compares the maps of two classes of a classifier: leave it out "
            "with a target"
        )
    if "pointing_game" in metrics and not _boxed(target):
        raise ValueError(
            "the pointing game asks whether a map's peak lies in a detection's box: it needs a "
            "detector's target (a BoxScoreTarget, DRiseTarget or the best detection)"
        )
    unknown_baselines = [b for b in baselines if b not in BASELINES]
    if unknown_baselines:
        raise ValueError(f"unknown baseline {unknown_baselines}; valid: {', '.join(BASELINES)}")
    if isinstance(model, LoadedModel):
        normalization = normalization or model.normalization
        module = model.model
        scorer = tuned_model(module) if tunes(model, (), tuned) else module
    else:
        module = model
        scorer = tuned_model(module) if tuned else module
    items = list(inputs)
    names = list(names) if names is not None else [f"image {i}" for i in range(len(items))]
    result = Evaluation(names, [*methods, *baselines], list(metrics))
    device = next(module.parameters()).device
    size = protocol.batch_size
    for chunk in batches(items, size):
        batch = torch.stack([items[i] for i in chunk]).to(device)
        scored = _Batch(module, scorer, batch, chunk, result, protocol, target)
        scored.score(methods, options, normalization)
        if on_batch is not None:
            on_batch(len(chunk))
    order = {name: i for i, name in enumerate(result.methods)}
    result.scores.sort(key=lambda r: (r["index"], order[r["method"]], METRICS.index(r["metric"])))
    result.curves.sort(
        key=lambda r: (r["index"], order[r["method"]], METRICS.index(r["metric"]), r["fraction"])
    )
    return result


def batches(inputs: Sequence[torch.Tensor], size: int) -> list[list[int]]:
    """The indices of ``inputs`` in the batches an evaluation scores: images of one shape
    together, ``size`` at most. (The centre baseline's ROAD systems are one a batch.)"""
    return [
        indices[start : start + size]
        for indices in by_shape(tuple(item.shape) for item in inputs)
        for start in range(0, len(indices), size)
    ]


@dataclass
class _Batch:
    """One batch of images of one shape, scored on every metric for every method."""

    module: nn.Module
    scorer: nn.Module  # what scores the perturbed copies: ``module``, or a tuned copy of it
    x: torch.Tensor
    indices: list[int]
    result: Evaluation
    protocol: Protocol
    target: Target | None = None  # bound on the clean output in _maps

    def score(
        self,
        methods: Sequence[str],
        options: MethodOptions | None,
        normalization: tuple[Sequence[float], Sequence[float]] | None,
    ) -> None:
        metrics = self.result.metrics
        targets, values, contrasts = self._maps(methods, options, normalization)
        base, ends = self.x, None
        if {"deletion", "insertion"} & set(metrics):  # their end points: the same for every map
            base = substrate(self.x, self.protocol.fill)
            ends = (self._probabilities(self.x, targets), self._probabilities(base, targets))
        for number, method in enumerate(self.result.methods):
            places = ranks(values[method])
            for name, (curve, xs) in self._curves(places, base, ends, targets, number).items():
                self._record(method, name, curve, xs)
            if "pointing_game" in metrics:
                assert isinstance(self.target, BoxTarget)
                boxes = self.target.boxes.to(self.x.device)
                boxes = boxes[:, 0] if boxes.dim() == 3 else boxes[:1].expand(len(self.x), 4)
                hits = pointing_game(values[method], boxes.to(values[method].dtype))
                for row, i in enumerate(self.indices):
                    _score(self.result, i, method, "pointing_game", float(hits[row]))
            if "class_sensitivity" in metrics:
                other = contrasts[method].to(self.x.device)
                correlation = spearman(values[method], other)
                for row, i in enumerate(self.indices):
                    _score(self.result, i, method, "class_sensitivity", float(correlation[row]))

    def _maps(
        self,
        methods: Sequence[str],
        options: MethodOptions | None,
        normalization: tuple[Sequence[float], Sequence[float]] | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The top-1 targets, each method's (and baseline's) pixel values, and with class
        sensitivity their values for the contrasting class."""
        sensitivity = "class_sensitivity" in self.result.metrics
        contrast, reduce, seed = self.protocol.contrast, self.protocol.reduce, self.protocol.seed

        def choose(logits: torch.Tensor) -> list[torch.Tensor] | list[Target]:
            if self.target is not None:  # fixed on the clean output, for every copy too
                self.target = self.target.bind(logits)
                return [self.target]
            top = logits.argmax(1)
            if not sensitivity:
                return [top]
            if contrast is not None:
                return [top, torch.full_like(top, contrast)]
            return [top, logits.topk(min(5, logits.shape[1]), dim=1).indices[:, -1]]

        x = self.x
        logits, explained = explain_batch(self.module, x, list(methods), choose, options,
                                          normalization)  # fmt: skip
        shape = (x.shape[0], x.shape[2], x.shape[3])
        values = {m: pixel_values(explained[0][m].maps.detach(), reduce) for m in methods}
        contrasts = {}
        if sensitivity:
            contrasts = {m: pixel_values(explained[1][m].maps.detach(), reduce) for m in methods}
        # baselines: a random map per image from its own seed, and the centred Gaussian
        if "random" in self.result.methods:
            values["random"] = self._random(shape, seed)
            contrasts["random"] = self._random(shape, seed + 1_000_003)
        if "centre" in self.result.methods:
            values["centre"] = contrasts["centre"] = centre_map(shape)
        values = {m: v.to(x.device) for m, v in values.items()}
        if self.target is not None:  # the rows whose target each copy is scored for
            return torch.arange(x.shape[0], device=x.device), values, contrasts
        return logits.argmax(1), values, contrasts

    def _random(self, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
        return torch.cat([random_map((1, *shape[1:]), seed + i) for i in self.indices])

    @torch.no_grad()
    def _probabilities(self, copies: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        """The model's probability of ``wanted`` for each perturbed copy, batched; with a
        target, its confidence for the rows ``wanted`` names."""
        out, size = [], self.protocol.per_pass(copies.device)
        for start in range(0, copies.shape[0], size):
            output = self.scorer(copies[start : start + size])
            rows = wanted[start : start + size]
            # a classifier's top-1 class is a class target like any other: its softmax
            scored = ClassTarget(rows) if self.target is None else self.target.select(rows)
            out.append(scored.confidence(model_output(output)).float())
        return torch.cat(out)

    def _curves(
        self,
        places: torch.Tensor,
        base: torch.Tensor,
        ends: tuple[torch.Tensor, torch.Tensor] | None,
        targets: torch.Tensor,
        number: int,
    ) -> dict[str, tuple[torch.Tensor, list[float]]]:
        """Each curve metric's curves (B, points) and their x positions, for one method
        (``number`` in the list, which spreads ROAD's noise seeds); ``ends``: the clean and the
        substrate's probabilities, deletion's and insertion's end points."""
        metrics, protocol, x = self.result.metrics, self.protocol, self.x
        per_pass = protocol.per_pass(x.device)
        curves: dict[str, tuple[torch.Tensor, list[float]]] = {}
        for name in ("deletion", "insertion"):
            if name in metrics:
                curve = deletion_curves(x, places, base, targets, protocol.steps,
                                        name == "insertion", self._probabilities, ends,
                                        per_pass)  # fmt: skip
                curves[name] = (curve, fractions(protocol.steps))
        for name, most_first in (("road_morf", True), ("road_lerf", False)):
            if name in metrics:
                seed = protocol.seed
                seeds = [(seed * 7919 + i) * 64 + number * 2 + most_first for i in self.indices]
                at = protocol.road_fractions
                curve = road_curves(x, places, targets, most_first, self._probabilities, seeds,
                                    at, protocol.noise, per_pass)  # fmt: skip
                curves[name] = (curve, list(at))
        return curves

    def _record(self, method: str, name: str, curve: torch.Tensor, xs: list[float]) -> None:
        """One metric's score per image (area under the curve, or ROAD's mean) and its points."""
        result = self.result
        score = area(curve, xs) if name in ("deletion", "insertion") else curve.mean(1)
        for row, i in enumerate(self.indices):
            _score(result, i, method, name, float(score[row]))
            for fraction, value in zip(xs, curve[row].tolist(), strict=True):
                result.curves.append(
                    {"index": i, "image": result.images[i], "method": method, "metric": name,
                     "fraction": fraction, "value": value}
                )  # fmt: skip


def _boxed(target: Target | None) -> bool:
    """Whether ``target`` names a box a map's peak should fall in (a detection's)."""
    return target is not None and target.locates


def _score(result: Evaluation, index: int, method: str, metric: str, value: float) -> None:
    result.scores.append(
        {"index": index, "image": result.images[index], "method": method, "metric": metric,
         "value": value}
    )  # fmt: skip
