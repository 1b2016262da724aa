"""The model's forward pass measured here, so that a long run can say what it will cost before
it starts (a method's passes, an evaluation's) instead of running silently for an hour."""

from __future__ import annotations

import time

import torch

from .loading import LoadedModel


def pass_seconds(loaded: LoadedModel, batch: int = 4, size: tuple[int, int] | None = None) -> float:
    """Seconds of one forward pass per image at ``size`` (H, W; default the model's square
    input), in batches of ``batch``: the faster of two timed passes after a warm-up, on random
    pixels (an empty photo can make a detector's pass cheaper than a real one's)."""
    height, width = size or (loaded.input_size, loaded.input_size)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, height, width, generator=generator).to(loaded.device)
    timings = []
    with torch.no_grad():
        for _ in range(3):
            started = time.perf_counter()
            loaded.model(x)
            if loaded.device.type == "cuda":
                torch.cuda.synchronize(loaded.device)
            timings.append(time.perf_counter() - started)
    return min(timings[1:]) / batch


def duration(seconds: float) -> str:
    """A duration as a person says it: ``40 s``, ``6 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
