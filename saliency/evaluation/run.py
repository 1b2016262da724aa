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
from ..engine.options import MethodOptions
from ..grouping import by_shape
from ..models.loading import LoadedModel
from .metrics import (
    FILLS,
    ROAD_FRACTIONS,
    area,
    deletion_curves,
    fractions,
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


@dataclass(frozen=True)
class Settings:
    """How the metrics perturb and score (see :func:`evaluate`)."""

    steps: int = 20
    fill: str = "blur"
    road_fractions: tuple[float, ...] = ROAD_FRACTIONS
    noise: float = 0.01
    contrast: int | None = None
    reduce: str = "max"
    seed: int = 0
    batch_size: int = 64


def evaluate(
    model: nn.Module | LoadedModel,
    inputs: Sequence[torch.Tensor] | torch.Tensor,
    methods: Sequence[str],
    metrics: Sequence[str] = METRICS,
    names: Sequence[str] | None = None,
    *,
    steps: int = 20,
    fill: str = "blur",
    road_fractions: Sequence[float] = ROAD_FRACTIONS,
    noise: float = 0.01,
    contrast: int | None = None,
    reduce: str = "max",
    seed: int = 0,
    batch_size: int = 64,
    options: MethodOptions | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    on_batch: Callable[[int], None] | None = None,
    baselines: Sequence[str] = BASELINES,
) -> Evaluation:
    """Evaluate ``methods`` (and the ``random`` and ``centre`` baselines) on ``inputs``
    (preprocessed, (3, H, W) each, or a batch) with ``metrics`` (see :mod:`.metrics`).
    Leave out ``baselines`` only to time the methods alone: without them a score has no scale.

    The explained class is each image's top-1; class sensitivity compares it with ``contrast``
    or else the lowest of the top 5. ``seed`` fixes the random map and ROAD's noise: the same
    seed gives the same numbers. ``on_batch(n)`` is told of each batch of ``n`` images done.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric {unknown}; valid: {', '.join(METRICS)}")
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; valid: {', '.join(FILLS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if isinstance(model, LoadedModel):
        normalization = normalization or model.normalization
        module = model.model
    else:
        module = model
    items = list(inputs)
    names = list(names) if names is not None else [f"image {i}" for i in range(len(items))]
    unknown_baselines = [b for b in baselines if b not in BASELINES]
    if unknown_baselines:
        raise ValueError(f"unknown baseline {unknown_baselines}; valid: {', '.join(BASELINES)}")
    result = Evaluation(names, [*methods, *baselines], list(metrics))
    settings = Settings(
        steps, fill, tuple(road_fractions), noise, contrast, reduce, seed, batch_size
    )
    device = next(module.parameters()).device
    for indices in by_shape(tuple(item.shape) for item in items):
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = torch.stack([items[i] for i in chunk]).to(device)
            _batch(module, batch, chunk, methods, result, options, normalization, settings)
            if on_batch is not None:
                on_batch(len(chunk))
    order = {name: i for i, name in enumerate(result.methods)}
    result.scores.sort(key=lambda r: (r["index"], order[r["method"]], METRICS.index(r["metric"])))
    result.curves.sort(
        key=lambda r: (r["index"], order[r["method"]], METRICS.index(r["metric"]), r["fraction"])
    )
    return result


def _batch(
    module: nn.Module,
    x: torch.Tensor,
    indices: list[int],
    methods: Sequence[str],
    result: Evaluation,
    options: MethodOptions | None,
    normalization: tuple[Sequence[float], Sequence[float]] | None,
    settings: Settings,
) -> None:
    metrics, contrast, reduce, seed = (
        result.metrics,
        settings.contrast,
        settings.reduce,
        settings.seed,
    )
    steps, batch_size = settings.steps, settings.batch_size
    sensitivity = "class_sensitivity" in metrics

    def choose(logits: torch.Tensor) -> list[torch.Tensor]:
        top = logits.argmax(1)
        if not sensitivity:
            return [top]
        if contrast is not None:
            other = torch.full_like(top, contrast)
        else:
            other = logits.topk(min(5, logits.shape[1]), dim=1).indices[:, -1]
        return [top, other]

    logits, explained = explain_batch(module, x, list(methods), choose, options, normalization)
    targets = logits.argmax(1)
    shape = (x.shape[0], x.shape[2], x.shape[3])
    values = {m: pixel_values(explained[0][m].maps.detach(), reduce) for m in methods}
    # baselines: a random map per image from its own seed, and the centred Gaussian
    if "random" in result.methods:
        values["random"] = torch.cat([random_map((1, *shape[1:]), seed + i) for i in indices])
    if "centre" in result.methods:
        values["centre"] = centre_map(shape)
    values = {m: v.to(x.device) for m, v in values.items()}

    @torch.no_grad()
    def probabilities(copies: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, copies.shape[0], batch_size):
            part = module(copies[start : start + batch_size]).float().softmax(1)
            out.append(part.gather(1, wanted[start : start + batch_size, None])[:, 0])
        return torch.cat(out)

    base = substrate(x, settings.fill) if {"deletion", "insertion"} & set(metrics) else x
    for number, method in enumerate(result.methods):
        places = ranks(values[method])
        curves: dict[str, tuple[torch.Tensor, list[float]]] = {}
        for name in ("deletion", "insertion"):
            if name in metrics:
                curve = deletion_curves(
                    x, places, base, targets, steps, name == "insertion", probabilities
                )
                curves[name] = (curve, fractions(steps))
        for name, most_first in (("road_morf", True), ("road_lerf", False)):
            if name in metrics:
                seeds = [(seed * 7919 + i) * 64 + number * 2 + most_first for i in indices]
                fractions_ = settings.road_fractions
                curve = road_curves(
                    x, places, targets, most_first, probabilities, seeds, fractions_, settings.noise
                )
                curves[name] = (curve, list(fractions_))
        for name, (curve, xs) in curves.items():
            score = area(curve, xs) if name in ("deletion", "insertion") else curve.mean(1)
            for row, i in enumerate(indices):
                _score(result, i, method, name, float(score[row]))
                image = result.images[i]
                for fraction, value in zip(xs, curve[row].tolist(), strict=True):
                    point = {"fraction": fraction, "value": value}
                    result.curves.append(
                        {"index": i, "image": image, "method": method, "metric": name, **point}
                    )
        if sensitivity:
            if method == "random":
                other = torch.cat([random_map((1, *shape[1:]), seed + 1_000_003 + i)
                                   for i in indices])  # fmt: skip
            elif method == "centre":
                other = values["centre"]
            else:
                other = pixel_values(explained[1][method].maps.detach(), reduce)
            correlation = spearman(values[method], other.to(x.device))
            for row, i in enumerate(indices):
                _score(result, i, method, "class_sensitivity", float(correlation[row]))


def _score(result: Evaluation, index: int, method: str, metric: str, value: float) -> None:
    result.scores.append(
        {"index": index, "image": result.images[index], "method": method, "metric": metric,
         "value": value}
    )  # fmt: skip
