"""``rise``: RISE (Petsiuk et al. 2018): the class probability of the photo seen through many
random masks, each pixel weighted by how visible it was. No gradient at all.

Each mask is a ``cells`` x ``cells`` grid of cells kept with probability ``p``, enlarged
bilinearly to ``cells + 1`` cells of ``ceil(side / cells)`` pixels and cut to the input at a
random shift of less than one cell; the map is ``sum_i P(class | x * M_i) M_i / (masks * p)``.
The masks are drawn from the run's seed for each input size, so a map depends on neither its
batch nor the order of the inputs. It costs one forward per mask, ``batch_size`` a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from ..engine.method import Method, MethodOutput, PathContext
from ..engine.objectives import model_output
from ..engine.passes import expanded
from ..engine.registry import register_method
from ..engine.report import RuleReport
from ..engine.settings import Setting
from ..engine.state import explanation_mode


@lru_cache(maxsize=8)
def _draws(count: int, cells: int, p: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept cells (count, cells, cells) and each mask's shift as a fraction of a cell
    (count, 2), drawn on the CPU from ``seed`` alone."""
    generator = torch.Generator().manual_seed(seed)
    grids = (torch.rand(count, cells, cells, generator=generator) < p).float()
    return grids, torch.rand(count, 2, generator=generator)


def rise_masks(
    which: torch.Tensor,
    size: tuple[int, int],
    count: int,
    cells: int,
    p: float,
    seed: int,
) -> torch.Tensor:
    """Masks number ``which`` (n,) of the ``count`` that ``seed`` draws, as (n, 1, H, W) in [0, 1]
    on ``which``'s device: each a grid enlarged by one cell and cut at its shift."""
    grids, shifts = _draws(count, cells, p, seed)
    index = which.cpu()
    cell = (math.ceil(size[0] / cells), math.ceil(size[1] / cells))
    enlarged = (cells + 1) * cell[0], (cells + 1) * cell[1]
    up = F.interpolate(grids[index, None].to(which.device), enlarged, mode="bilinear")[:, 0]
    up = up.clamp_(0.0, 1.0)  # bilinear weights can sum to a hair over 1
    offsets = (shifts[index] * torch.tensor(cell)).long().to(which.device)
    rows = offsets[:, :1] + torch.arange(size[0], device=which.device)
    columns = offsets[:, 1:] + torch.arange(size[1], device=which.device)
    picked = torch.arange(len(index), device=which.device)[:, None, None]
    return up[picked, rows[:, :, None], columns[:, None, :]][:, None]


@register_method
class RISE(Method):
    name = "rise"
    summary = "probability of the photo through random masks, per pixel (Petsiuk et al. 2018)"
    cost = "1 forward per mask (MASKS, 4000 by default), batched; no backward"
    slow = True
    order = 95
    random = True
    settings = (
        Setting("masks", int, 4000, "random masks, one forward each", low=1),
        Setting("cells", int, 7, "cells along each side of a mask's grid", low=2),
        Setting("p", float, 0.5, "chance that a cell is kept", low=0.0, high=1.0, low_open=True),
    )

    def forwards(self, settings: Mapping[str, Any], size: tuple[int, int]) -> int | None:
        return int(settings["masks"])

    def shown(self, maps: torch.Tensor) -> torch.Tensor:
        """Above the map's minimum: every pixel carries about the mean probability, so drawn as
        it is the map would be one colour; the paper's figures scale from the minimum too."""
        return maps - maps.amin()

    def compute(self, context: PathContext) -> list[MethodOutput]:
        inputs, options = context.inputs, context.options
        settings = options.of(self)
        count, cells, p = settings["masks"], settings["cells"], settings["p"]
        size = (inputs.shape[-2], inputs.shape[-1])
        sums = [inputs.new_zeros(inputs.shape[0], 1, *size) for _ in context.target_sets]
        batches = expanded(
            inputs.shape[0], count, options.batch_size, inputs.device, context.should_stop
        )
        with torch.no_grad(), explanation_mode(context.model):
            for sample, k in batches:
                masks = rise_masks(k, size, count, cells, p, options.seed).to(inputs.dtype)
                output = model_output(context.model(inputs[sample] * masks))
                for found, target in zip(sums, context.target_sets, strict=True):
                    score = target.select(sample).confidence(output)
                    found.index_add_(0, sample, score.to(masks.dtype).view(-1, 1, 1, 1) * masks)
        return [MethodOutput(found / (count * p), RuleReport("gradient")) for found in sums]
