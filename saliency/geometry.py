"""Where a model's input lies in the original photo, and mapping maps back onto it.

Torch-free (NumPy and Pillow), so that the processes that draw pictures need not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Geometry:
    """Where the model's input lies in the original image.

    ``box`` = (left, top, right, bottom) in original pixel coordinates, covered by the model's
    input of ``input_size`` = (width, height); ``image_size`` = (width, height) of the original.
    """

    image_size: tuple[int, int]
    box: tuple[float, float, float, float]
    input_size: tuple[int, int]

    def resample(self, plane: Image.Image, rows: slice | None = None) -> Image.Image:
        """Resample a float map (mode ``F``, the model's input size) onto the original image.

        Bilinear, pixel-centre convention; ``rows`` selects a band of output rows. Pixels whose
        centre lies outside the box (outside a center crop) are 0.
        """
        width, height = self.image_size
        start, stop, _ = (rows or slice(0, height)).indices(height)
        left, top, right, bottom = self.box
        sx = self.input_size[0] / (right - left)
        sy = self.input_size[1] / (bottom - top)
        if self.box == (0.0, 0.0, float(width), float(height)) and sx <= 1.0 and sy <= 1.0:
            # the whole map onto the whole image, enlarged: resize computes the same bilinear
            # interpolation (equal to float precision) 4x faster than the general transform
            source = (0.0, start * sy, float(self.input_size[0]), stop * sy)
            return plane.resize((width, stop - start), Image.Resampling.BILINEAR, box=source)
        return plane.transform(
            (width, stop - start),
            Image.Transform.AFFINE,
            (sx, 0.0, -left * sx, 0.0, sy, (start - top) * sy),
            resample=Image.Resampling.BILINEAR,
            fillcolor=0.0,
        )

    def to_image(self, maps: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """Resample maps (..., h, w) at model resolution onto the original image (..., H, W).

        See :meth:`resample`; ``rows`` selects a band of output rows.
        """
        import torch

        maps = maps.detach().float().cpu()
        planes = maps.reshape(-1, *maps.shape[-2:]).numpy()
        out = [np.asarray(self.resample(Image.fromarray(p, "F"), rows)) for p in planes]
        return torch.from_numpy(np.stack(out)).reshape(*maps.shape[:-2], *out[0].shape)

    def scaled(self, size: tuple[int, int]) -> Geometry:
        """The same mapping onto the image resized to ``size`` (width, height), e.g. a thumbnail."""
        sx, sy = size[0] / self.image_size[0], size[1] / self.image_size[1]
        left, top, right, bottom = self.box
        return Geometry(size, (left * sx, top * sy, right * sx, bottom * sy), self.input_size)

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """Plain JSON-able form."""
        return {
            "image_size": list(self.image_size),
            "box": list(self.box),
            "input_size": list(self.input_size),
        }
