"""Reading and decoding one input, down to the model's input size: the work of the readers.

Torch-free, so that writer processes, which also read, start fast and stay small: the result is
8-bit pixels at the model's input size, which the run turns into a tensor (cheap). Threads and
processes run this same code, so their tensors are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from ..files.images import load_image
from ..files.inputs import InputFile
from ..files.sources import SourceId, read_regular
from ..geometry import Geometry
from ..models.preprocess import Preprocessing


@dataclass
class Pixels:
    """An input read and resampled for the model, or why it could not be."""

    input: InputFile
    pixels: np.ndarray | None = None
    geometry: Geometry | None = None
    source: SourceId | None = None
    error: str | None = None


def read_pixels(file: InputFile, preprocessing: Preprocessing, fit: str | None) -> Pixels:
    """Read ``file`` (a regular file only), decode it (a JPEG at the smallest DCT scale that
    loses nothing) and resample it to the model's input. Never raises for a bad file."""
    try:
        data, source = read_regular(file.path)
        reduce_for = partial(preprocessing.source_size, fit=fit)
        image = load_image(file.path, reduce_for, data=data)
        del data
        pixels, geometry = preprocessing.resize(image, fit)
        return Pixels(file, pixels, geometry, source)
    except Exception as exc:  # never let one bad file stop the run
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        return Pixels(file, error=reason)
