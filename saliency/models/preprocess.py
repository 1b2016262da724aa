"""A model's preprocessing, with the geometry that maps its input back onto the photo.

Each fit mode takes a box of the original image (in its pixel coordinates) and resamples it to the
model's input in one step, so the mapping back is exact by construction:

* ``native`` (default): the whole image, shorter side scaled to the model's input size, aspect
  kept, no crop. CNNs with adaptive pooling accept any size, so the map covers the whole photo
  without distortion.
* ``crop``: the model's own evaluation transform (resize the shorter side, then center-crop). The
  map covers only the crop; outside it the map is empty.
* ``resize``: the whole image squeezed to the model's square input (aspect not kept). For models
  that need a fixed input size, this is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..choices import FIT_MODES
from ..geometry import Geometry

if TYPE_CHECKING:  # torch is imported where tensors are made: reader processes go without it
    import torch

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# In native mode the longer side is held to this many times the input size (extreme panoramas).
MAX_ASPECT = 4


@dataclass(frozen=True)
class Preprocessing:
    """A model's input transform: sizes, resampling filter and normalization."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    fixed_input_size: bool = False

    @property
    def default_fit(self) -> str:
        """``native`` for models that take any size, ``resize`` for fixed-size ones."""
        return "resize" if self.fixed_input_size else "native"

    def geometry(self, image_size: tuple[int, int], fit: str | None = None) -> Geometry:
        """The box and input size that ``fit`` gives for an image of ``image_size`` (W, H)."""
        fit = check_fit(fit or self.default_fit)
        if fit == "native" and self.fixed_input_size:
            raise ValueError("this model needs a fixed input size: use fit 'resize' or 'crop'")
        width, height = image_size
        size = self.input_size
        if fit == "resize":
            return Geometry(image_size, (0.0, 0.0, float(width), float(height)), (size, size))
        if fit == "native":
            scale = size / min(width, height)
            out_w = min(max(1, round(width * scale)), MAX_ASPECT * size)
            out_h = min(max(1, round(height * scale)), MAX_ASPECT * size)
            return Geometry(image_size, (0.0, 0.0, float(width), float(height)), (out_w, out_h))
        # crop: as torchvision's Resize(resize_size) then CenterCrop(input_size), with its rounding
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.resize_size, int(self.resize_size * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        crop_left = int(round((new_w - size) / 2.0))
        crop_top = int(round((new_h - size) / 2.0))
        sx, sy = width / new_w, height / new_h
        box = (crop_left * sx, crop_top * sy, (crop_left + size) * sx, (crop_top + size) * sy)
        return Geometry(image_size, box, (size, size))

    def source_size(self, image_size: tuple[int, int], fit: str | None = None) -> tuple[int, int]:
        """The smallest decoded size of an ``image_size`` photo that loses nothing for ``fit``."""
        geometry = self.geometry(image_size, fit)
        left, top, right, bottom = geometry.box
        width, height = geometry.input_size
        scale = max(width / (right - left), height / (bottom - top))
        scale = min(scale, 1.0)
        return (math.ceil(image_size[0] * scale), math.ceil(image_size[1] * scale))

    def __call__(self, image: Image.Image, fit: str | None = None) -> tuple[torch.Tensor, Geometry]:
        """The normalized input tensor (3, h, w) for an RGB image, and its geometry.

        An image decoded at a reduced scale carries its full size in ``info["full_size"]``
        (see :func:`saliency.load_image`); the geometry is always that of the full photo.
        """
        pixels, geometry = self.resize(image, fit)
        return self.to_tensor(pixels), geometry

    def resize(self, image: Image.Image, fit: str | None = None) -> tuple[np.ndarray, Geometry]:
        """The first, torch-free half of :meth:`__call__`: the model's input as 8-bit pixels
        (h, w, 3), resampled from the photo's box, and the geometry."""
        width, height = image.info.get("full_size", image.size)
        full = (int(width), int(height))
        geometry = self.geometry(full, fit)
        sx, sy = image.size[0] / full[0], image.size[1] / full[1]
        left, top, right, bottom = geometry.box
        resized = image.resize(
            geometry.input_size,
            resample=_RESAMPLE[self.interpolation],
            box=(left * sx, top * sy, right * sx, bottom * sy),
        )
        return np.asarray(resized, dtype=np.uint8), geometry

    def to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        """The second half: 8-bit pixels (h, w, 3) to the normalized input (3, h, w)."""
        import torch

        tensor = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1).div_(255.0)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return tensor.sub_(mean).div_(std)


def check_fit(fit: str) -> str:
    """Validate a fit mode name."""
    if fit not in FIT_MODES:
        raise ValueError(f"unknown fit mode {fit!r}; valid fit modes: {', '.join(FIT_MODES)}")
    return fit
