"""Model-randomization sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", 2018).

A map that explains the model must change when the model's weights are randomized. Two tests:

* **cascading** randomization: re-initialize from the logits down to the first layer, one step at
  a time, keeping what was randomized before;
* **independent** randomization: re-initialize one step at a time, everything else original.

A step is a *stage* (a top-level child of the model, or a child of a top-level container:
``layer4``, ``features.12``, ``blocks.6``, ``Mixed_7c``) or a single *layer*. The layers are the
modules with parameters of their own and a ``reset_parameters`` method (conv, linear,
batch-norm, layer/group norm), ordered by when they run in a forward pass, last first.
Re-initializing calls the module's own ``reset_parameters()`` under ``torch.manual_seed(seed +
step)``: conv and linear weights and biases get their default random initialization; batch-norm
gets its defaults too, which means affine weight 1 and bias 0 *and running statistics reset to
mean 0 and variance 1* (as Quantus' MPRT does). The caller's model is never modified: the checks
run on a copy, and the global random state is left as it was.

Metrics (:mod:`.sanity_metrics`) compare each step's map with the original model's map, per image
and method, at the model's input resolution.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..api import explain_batch
from ..choices import SANITY_MODES as MODES
from ..engine.objectives import Target
from ..engine.options import MethodOptions, resolved
from ..engine.registry import get_method
from ..grouping import by_shape
from .randomization import Step, randomization_steps, randomize, resettable_layers
from .sanity_metrics import MapFeatures, compare_features

__all__ = [
    "SanityResult", "Step", "Verdict", "randomization_steps", "randomize", "resettable_layers",
    "run_sanity", "verdicts",
]  # fmt: skip


@dataclass
class SanityResult:
    """Everything a sanity run found.

    ``rows`` holds one dict per image, method, step and metric (keys ``image, method, step,
    layer, metric, value``; step 0 is the random-map baseline, not a randomization step).
    ``strips[image][method]`` has the normalized |map| of the original model and after each step;
    ``classes[step]`` the class explained for each image at each step (0: the original model).
    """

    steps: list[Step]
    methods: tuple[str, ...]
    images: list[str]
    mode: str
    rows: list[dict[str, object]] = field(default_factory=list)
    strips: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    classes: list[list[int]] = field(default_factory=list)

    def values(self, method: str, metric: str) -> np.ndarray:
        """(images, steps) array of ``metric`` for ``method`` over the randomization steps."""
        table = {
            (row["image"], row["step"]): row["value"]
            for row in self.rows
            if row["method"] == method and row["metric"] == metric and row["step"] > 0  # type: ignore[operator]
        }
        return np.array(
            [
                [table.get((image, s + 1), np.nan) for s in range(len(self.steps))]
                for image in self.images
            ],
            dtype=float,
        )

    def baseline(self, method: str, metric: str) -> np.ndarray:
        """Per image, ``metric`` between the original map and an independent random map."""
        return np.array(
            [
                row["value"]
                for row in self.rows
                if row["method"] == method and row["metric"] == metric and row["step"] == 0
            ],
            dtype=float,
        )


def _thumbnail(maps: torch.Tensor, size: int = 112) -> np.ndarray:
    """|map| for a strip: 99th-percentile clip, [0, 1], at most ``size`` pixels on a side."""
    magnitude = maps.detach().float().abs().sum(0, keepdim=True)[None]
    height, width = magnitude.shape[-2:]
    scale = min(1.0, size / max(height, width))
    if scale < 1.0:
        magnitude = nn.functional.interpolate(
            magnitude, scale_factor=scale, mode="area", recompute_scale_factor=False
        )
    values = magnitude[0, 0].cpu().numpy().astype(np.float64)
    top = float(np.percentile(values, 99))
    return np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)


def run_sanity(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    names: Sequence[str],
    methods: Sequence[str] = ("gradient", "guided", "gradcam", "guided_gradcam"),
    *,
    mode: str = "cascading",
    granularity: str = "stage",
    seed: int = 0,
    repredict: bool = False,
    options: MethodOptions | None = None,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    on_step: Callable[[int, int, str], None] = lambda done, total, name: None,
    target: Target | None = None,
) -> SanityResult:
    """The model-randomization sanity check (Adebayo et al. 2018) on your model and inputs.

    A copy of the model is randomized step by step from the logits down (each layer's own
    ``reset_parameters()`` under ``torch.manual_seed(seed + step)``), and each step's maps are
    compared with the original model's. The caller's model and the global random state are
    never touched.

    Args:
        model: The classifier (left as it is).
        inputs: Preprocessed inputs, (C, H, W) each.
        names: A label for each input.
        methods: The methods to check.
        mode: ``cascading`` (keep what was randomized before) or ``independent`` (one step at
            a time, everything else original).
        granularity: ``stage`` (a top-level child, or a child of a top-level container) or
            ``layer`` (every conv, linear and norm layer).
        seed: Makes the randomization, and so every number, reproducible.
        repredict: Explain each randomized model's own top-1 instead of the original's.
        options: The methods' settings; its ``batch_size`` is the number of inputs per pass.
        normalization: (mean, std) of the model's input, for the black baseline.
        on_step: Called as ``on_step(done, total, layer)`` after each step (for progress).
        target: What to explain instead of the top-1 class (a segmentation's class over its
            region, a similarity), fixed on the original model's output (the region it
            assigns) for every randomized step, or with ``repredict`` on each step's own.

    Returns:
        The rows (``image, method, step, layer, metric, value``), the map strips and the
        classes explained at each step; [saliency.checks.sanity.verdicts][] gives the table of
        which methods pass.

    Raises:
        ValueError: An unknown mode, granularity or method, or not one name per input.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if len(inputs) != len(names) or not inputs:
        raise ValueError("give one name per input, and at least one input")
    chosen = tuple(get_method(m).name for m in methods)
    options = options or MethodOptions()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    work = copy.deepcopy(model).eval()
    groups = by_shape(tuple(tensor.shape) for tensor in inputs)
    first = inputs[0][None].to(device)
    steps = randomization_steps(work, first, granularity)
    options = resolved(options, [get_method(m) for m in chosen], work, first)

    result = SanityResult(steps, chosen, list(names), mode)
    fixing = _Fixing(target)
    original, targets = _maps(work, inputs, groups, chosen, options, normalization, None, device,
                              fixing)  # fmt: skip
    result.classes.append(targets.tolist())
    generator = torch.Generator().manual_seed(seed)
    reference = {m: [MapFeatures.of(maps) for maps in original[m]] for m in chosen}
    for i, name in enumerate(names):
        result.strips[name] = {m: [_thumbnail(original[m][i])] for m in chosen}
        for method in chosen:
            noise = torch.randn(original[method][i].shape, generator=generator, dtype=torch.float64)
            noise_features = MapFeatures.of(noise)
            for metric, value in compare_features(reference[method][i], noise_features).items():
                result.rows.append(_row(name, method, 0, "random map", metric, value))

    modules = dict(work.named_modules())
    saved = {
        name: copy.deepcopy(modules[name].state_dict())
        for step in steps
        for name in step.modules
        if mode == "independent"
    }
    for index, step in enumerate(steps, start=1):
        randomize(work, step, seed + index)
        fixed = None if repredict else targets
        fixing.again = repredict
        maps, explained = _maps(work, inputs, groups, chosen, options, normalization, fixed, device,
                                fixing)  # fmt: skip
        result.classes.append(explained.tolist())
        for i, name in enumerate(names):
            for method in chosen:
                result.strips[name][method].append(_thumbnail(maps[method][i]))
                found = compare_features(reference[method][i], MapFeatures.of(maps[method][i]))
                for metric, value in found.items():
                    result.rows.append(_row(name, method, index, step.name, metric, value))
        if mode == "independent":
            for module_name in step.modules:
                modules[module_name].load_state_dict(saved[module_name])
        on_step(index, len(steps), step.name)
    return result


def _row(image: str, method: str, step: int, layer: str, metric: str, value: float) -> dict:
    return {
        "image": image,
        "method": method,
        "step": step,
        "layer": layer,
        "metric": metric,
        "value": value,
    }


def _maps(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    groups: list[list[int]],
    methods: tuple[str, ...],
    options: MethodOptions,
    normalization: tuple[Sequence[float], Sequence[float]] | None,
    targets: torch.Tensor | None,
    device: torch.device,
    fixing: _Fixing,
) -> tuple[dict[str, list[torch.Tensor]], torch.Tensor]:
    """Each method's map per input (CPU), and the classes explained (-1 for a target with no
    class)."""
    maps: dict[str, list[torch.Tensor | None]] = {m: [None] * len(inputs) for m in methods}
    explained = torch.zeros(len(inputs), dtype=torch.long)
    for group in groups:
        for part in _chunks(group, options.batch_size):
            batch = torch.stack([inputs[i] for i in part]).to(device)
            index, key = torch.tensor(part), tuple(part)

            def choose(
                logits: torch.Tensor, index: torch.Tensor = index, key: tuple[int, ...] = key
            ) -> list[Any]:
                if fixing.target is not None:
                    return [fixing.bound(key, logits)]
                if targets is None:
                    return [logits.argmax(dim=1)]
                return [targets[index].to(logits.device)]

            _, (results,) = explain_batch(model, batch, methods, choose, options, normalization)
            for method in methods:
                result = results[method]
                for row, i in enumerate(part):
                    maps[method][i] = result.maps[row].detach().float().cpu()
                    explained[i] = int(result.targets[row])
    return maps, explained  # type: ignore[return-value]


class _Fixing:
    """A target bound once per batch of inputs on the original model's output, and reused for
    the randomized models' (or bound again on each one's, ``again``)."""

    def __init__(self, target: Target | None) -> None:
        self.target = target
        self.again = False
        self._bound: dict[tuple[int, ...], Target] = {}

    def bound(self, part: tuple[int, ...], logits: torch.Tensor) -> Target:
        assert self.target is not None
        if self.again or part not in self._bound:
            self._bound[part] = self.target.bind(logits)
        return self._bound[part]


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


DEFAULT_THRESHOLD = 0.3


@dataclass(frozen=True)
class Verdict:
    """One method's result: mean and s.d. over images of ``spearman_abs`` after the first step
    and after the last, the random-map baseline, and whether the last is below ``threshold``."""

    method: str
    first: tuple[float, float]
    last: tuple[float, float]
    baseline: float
    threshold: float

    @property
    def passes(self) -> bool:
        """The map changed: after full randomization it is ranked unlike the original."""
        return self.last[0] < self.threshold


def verdicts(result: SanityResult, threshold: float = DEFAULT_THRESHOLD) -> list[Verdict]:
    """Per method, how far ``spearman_abs`` fell, and whether it passes ``threshold``."""
    out = []
    for method in result.methods:
        values = result.values(method, "spearman_abs")
        first, last = values[:, 0], values[:, -1]
        out.append(
            Verdict(
                method,
                (float(np.nanmean(first)), float(np.nanstd(first))),
                (float(np.nanmean(last)), float(np.nanstd(last))),
                float(np.nanmean(result.baseline(method, "spearman_abs"))),
                threshold,
            )
        )
    return out
