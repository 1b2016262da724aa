"""SmoothGrad (Smilkov et al. 2017) over any method: the mean map over noisy copies of each input.

The noise level is a fraction of each input's value range, ``sigma = noise * (max - min)``, as in
the paper (10-20% works well). The draws come from a CPU generator seeded with ``seed`` and are
the same for every image of a shape, so an image's map does not depend on its batch or order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..explanation import Explanation
from .method import Method
from .objectives import Target
from .options import MethodOptions
from .passes import expanded, predict
from .planner import Choose, run_plan, targets_of
from .report import RuleReport


def noise_samples(shape: tuple[int, ...], count: int, seed: int = 0) -> torch.Tensor:
    """``count`` standard-normal draws of ``shape``, (count, *shape), from ``seed`` (CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator)


def noise_scale(inputs: torch.Tensor, noise: float) -> torch.Tensor:
    """Per-sample standard deviation (B, 1, 1, 1): ``noise`` times the sample's value range."""
    flat = inputs.detach().flatten(1)
    span = flat.amax(dim=1) - flat.amin(dim=1)
    return (noise * span).view(-1, 1, 1, 1)


def smoothed(
    model: nn.Module,
    inputs: torch.Tensor,
    methods: Sequence[Method],
    choose: Choose,
    options: MethodOptions,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, list[dict[str, Explanation]]]:
    """SmoothGrad over ``methods``: targets from the clean inputs, then the plan of
    :func:`.planner.run_plan` on ``options.smooth`` noisy copies per input, ``batch_size`` copies
    a pass; maps and per-sample values are averaged. Any method is wrapped the same way."""
    inputs = inputs.detach()
    count = options.smooth
    logits = predict(model, inputs, options.batch_size)
    target_sets = targets_of(choose, logits)
    batch = inputs.shape[0]
    draws = noise_samples(tuple(inputs.shape[1:]), count, options.seed)
    draws = draws.to(inputs.device, inputs.dtype)
    sigma = noise_scale(inputs, options.noise)
    sums: list[dict[str, torch.Tensor]] = [{} for _ in target_sets]
    values: list[dict[str, dict[str, torch.Tensor]]] = [{} for _ in target_sets]
    seen: dict[str, tuple[RuleReport, str | None]] = {}  # per method: report and layer
    for sample, copy in expanded(batch, count, options.batch_size, inputs.device, should_stop):
        noisy = inputs[sample] + sigma[sample] * draws[copy]
        chunk = [target.select(sample) for target in target_sets]

        def fixed(_: torch.Tensor, chunk: list[Target] = chunk) -> list[Target]:
            return chunk

        _, parts = run_plan(
            model, noisy, methods, fixed, options, normalization, should_stop, inputs[sample]
        )
        for n, found in enumerate(parts):
            for name, part in found.items():
                seen.setdefault(name, (part.report, part.layer))
                if name not in sums[n]:
                    shape = (batch, *part.maps.shape[1:])
                    sums[n][name] = part.maps.new_zeros(shape)
                sums[n][name].index_add_(0, sample, part.maps / count)
                totals = values[n].setdefault(name, {})
                for key, value in part.values.items():
                    if key not in totals:
                        totals[key] = torch.zeros(batch, device=inputs.device)
                    totals[key].index_add_(0, sample, value.to(totals[key].dtype) / count)
    return logits, [
        {
            m.name: Explanation(
                sums[n][m.name],
                targets.classes(batch, inputs.device),
                logits,
                m.name,
                *seen[m.name],
                count,
                values[n].get(m.name, {}),
                shown=m.shown,
            )
            for m in methods
        }
        for n, targets in enumerate(target_sets)
    ]
