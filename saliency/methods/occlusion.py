"""``occlusion``: how much the class score drops when a square window of the input is replaced by
a baseline, the window slid over the image (Zeiler & Fergus 2014). No gradient at all.

Each pixel gets the mean drop over the windows that cover it, as Captum's ``Occlusion`` gives
with a window of all channels: windows start every ``stride`` pixels from the top left, and the
last one in each direction is cut at the edge, so every pixel is covered. The map is signed:
positive where hiding the region lowers the score. It costs one forward per window position
(``ceil((side - window) / stride) + 1`` per side, squared), run ``batch_size`` copies a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..choices import BASELINES
from ..engine.baselines import make_baseline
from ..engine.method import Method, MethodOutput, PathContext
from ..engine.passes import copy_scores, predict
from ..engine.registry import register_method
from ..engine.report import RuleReport
from ..engine.settings import Setting


def window_starts(side: int, window: int, stride: int) -> list[int]:
    """Where the windows start along a side of ``side`` pixels: every ``stride`` from 0, until
    one reaches the far edge (that one may overhang it)."""
    count = math.ceil((side - window) / stride) + 1
    return [i * stride for i in range(count)]


@register_method
class Occlusion(Method):
    name = "occlusion"
    summary = "score drop when a sliding window is replaced by a baseline (Zeiler & Fergus 2014)"
    cost = "1 forward per window position ((side - window) / stride + 1, squared), batched"
    slow = True
    order = 90
    settings = (
        Setting("window", int, 32, "side of the square window hidden, in input pixels", low=1),
        Setting("stride", int, 16, "pixels between one window and the next", low=1),
        Setting(
            "baseline",
            str,
            "black",
            "what replaces the window: a black image, the zero input (the mean colour) or the "
            "photo blurred",
            choices=BASELINES,
            tensor=True,
        ),
    )

    def check_settings(self, values: dict[str, Any]) -> None:
        if values["stride"] > values["window"]:
            raise ValueError(
                f"occlusion: stride {values['stride']} is larger than window {values['window']}, "
                "which would leave pixels that no window covers"
            )

    def forwards(self, settings: Mapping[str, Any], size: tuple[int, int]) -> int | None:
        window, stride = settings["window"], settings["stride"]
        if window > min(size):
            return None  # refused when it runs
        rows = window_starts(size[0], window, stride)
        return len(rows) * len(window_starts(size[1], window, stride))

    def compute(self, context: PathContext) -> list[MethodOutput]:
        inputs, options = context.inputs, context.options
        settings = options.of(self)
        window, stride = settings["window"], settings["stride"]
        height, width = inputs.shape[-2:]
        if window > min(height, width):
            raise ValueError(
                f"occlusion: window {window} is larger than the input ({height} x {width})"
            )
        rows, columns = window_starts(height, window, stride), window_starts(width, window, stride)
        baselines = make_baseline(context.clean, settings["baseline"], context.normalization)
        at_input = context.logits
        if at_input is None:
            at_input = predict(context.model, inputs, options.batch_size)
        top = torch.tensor(rows, device=inputs.device).repeat_interleave(len(columns))
        left = torch.tensor(columns, device=inputs.device).repeat(len(rows))
        y = torch.arange(height, device=inputs.device)
        x = torch.arange(width, device=inputs.device)

        def occluded(sample: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            inside_rows = (y >= top[k, None]) & (y < top[k, None] + window)
            inside_columns = (x >= left[k, None]) & (x < left[k, None] + window)
            hidden = (inside_rows[:, :, None] & inside_columns[:, None, :])[:, None]
            return torch.where(hidden, baselines[sample], inputs[sample])

        scores = copy_scores(context, len(rows) * len(columns), occluded)
        shape = (len(rows), len(columns))
        outputs = []
        for found, target in zip(scores, context.target_sets, strict=True):
            drops = target.score(at_input).to(found.dtype)[:, None] - found
            maps = spread(drops, shape, window, stride, (height, width))
            outputs.append(MethodOutput(maps, RuleReport("gradient")))
        return outputs


def spread(
    drops: torch.Tensor,
    shape: tuple[int, int],
    window: int,
    stride: int,
    size: tuple[int, int],
) -> torch.Tensor:
    """(B, positions) score drops -> (B, 1, H, W): each pixel the mean drop of the windows that
    cover it. The windows overhanging the far edges are folded onto a padded canvas, cut back."""
    batch = drops.shape[0]
    canvas = ((shape[0] - 1) * stride + window, (shape[1] - 1) * stride + window)
    columns = drops.view(batch, 1, -1).expand(batch, window * window, -1)
    total = F.fold(columns, canvas, window, stride=stride)
    ones = torch.ones_like(columns[:1])
    covered = F.fold(ones, canvas, window, stride=stride)
    return (total / covered)[..., : size[0], : size[1]]
