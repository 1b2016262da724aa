"""Layer readers: how a layer's output becomes the grid (B, C, h, w) that the CAM family reads.

A convolution's output is channels-first already; a Swin stage's is channels-last (B, H, W, C);
a feature pyramid is a dict of levels; a transformer block's is a token sequence (B, N, C). A
reader says how to read one kind, and its gradient the same way. The readers here:

* ``channels_first``: (B, C, h, w) as it is.
* ``channels_last``: (B, h, w, C), permuted.
* ``pyramid``: a dict of (B, C, h, w) levels, read as pytorch-grad-cam's
  ``fasterrcnn_reshape_transform``: each level's absolute value resized bilinearly to its last
  (coarsest) level's grid, concatenated along the channels.
* ``tokens``: a vision transformer's sequence (B, P + h*w, D): its P prefix tokens dropped, the
  patch tokens laid out on the patch grid, both told by the model (:mod:`.transformers`), as
  pytorch-grad-cam's ``vit_reshape_transform`` does with its grid written in.

A layer is named ``NAME`` (its reader then told from its output, see :func:`layout`) or
``NAME:READER``. Where the layout cannot be told for sure, the layer is refused: never a
misread map. :func:`register_reader` adds a reader.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .transformers import token_layout

__all__ = [
    "LayerReader", "get_reader", "layout", "pyramid", "register_reader", "split_layer",
]  # fmt: skip


class LayerReader:
    """How one kind of layer output is read as a grid (B, C, h, w), its gradient alike.

    Attributes:
        name: The name after ``:`` in ``--layer NAME:READER``.
        summary: One line: what it reads.
    """

    name: ClassVar[str]
    summary: ClassVar[str]

    def sources(self, output: object) -> list[torch.Tensor] | None:
        """The tensors of ``output`` that gradients are taken with respect to; None if this
        reader cannot read it."""
        raise NotImplementedError

    def grid(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        """The grid (B, C, h, w) from :meth:`sources` (or from their gradients)."""
        raise NotImplementedError

    def expects(self) -> str:
        """What output it reads, for messages."""
        raise NotImplementedError

    def bound(self, model: nn.Module, size: tuple[int, int] | None) -> LayerReader:
        """The reader for ``model``'s layers at input ``size`` (H, W): itself, unless what it
        reads depends on the model (a token sequence's prefix and grid)."""
        return self


class ChannelsFirst(LayerReader):
    name = "channels_first"
    summary = "a convolution's feature map (B, C, h, w), as it is"

    def sources(self, output: object) -> list[torch.Tensor] | None:
        return [output] if isinstance(output, torch.Tensor) and output.dim() == 4 else None

    def grid(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        return parts[0]

    def expects(self) -> str:
        return "a tensor (B, C, h, w)"


class ChannelsLast(ChannelsFirst):
    name = "channels_last"
    summary = "a channels-last feature map (B, h, w, C) (a Swin stage, a ConvNeXt norm), permuted"

    def grid(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        return parts[0].permute(0, 3, 1, 2)

    def expects(self) -> str:
        return "a tensor (B, h, w, C)"


class Pyramid(LayerReader):
    name = "pyramid"
    summary = "a feature pyramid (a dict of levels), each resized to the coarsest, concatenated"

    def sources(self, output: object) -> list[torch.Tensor] | None:
        return levels(output)

    def grid(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        size = parts[-1].shape[-2:]
        return torch.cat([F.interpolate(p.abs(), size, mode="bilinear") for p in parts], 1)

    def expects(self) -> str:
        return "a dict of tensors (B, C, h, w)"


class Tokens(LayerReader):
    name = "tokens"
    summary = "a vision transformer's tokens (B, P + h*w, D), the patch tokens on their grid"

    def __init__(self, prefix: int = 0, cells: tuple[int, int] | None = None) -> None:
        self.prefix, self.cells = prefix, cells

    def bound(self, model: nn.Module, size: tuple[int, int] | None) -> LayerReader:
        found = token_layout(model)
        if found is None or (size is None and found.fixed is None):
            return self
        return Tokens(found.prefix, found.grid(size or (0, 0)))

    def sources(self, output: object) -> list[torch.Tensor] | None:
        if self.cells is None or not isinstance(output, torch.Tensor) or output.dim() != 3:
            return None
        h, w = self.cells
        return [output] if output.shape[1] == self.prefix + h * w else None

    def grid(self, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        h, w = self.cells or (0, 0)
        patches = parts[0][:, self.prefix :]
        return patches.reshape(patches.shape[0], h, w, patches.shape[2]).permute(0, 3, 1, 2)

    def expects(self) -> str:
        if self.cells is None:
            return ("a token sequence (B, P + h*w, D) of a model whose prefix tokens and patch "
                    "grid are known (a timm or torchvision vision transformer)")  # fmt: skip
        h, w = self.cells
        return f"a token sequence (B, {self.prefix} + {h}*{w}, D)"


def pyramid(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """A feature pyramid's levels as one feature map (see :class:`Pyramid`)."""
    return Pyramid().grid(parts)


_READERS: dict[str, LayerReader] = {}


def register_reader(reader: type[LayerReader]) -> type[LayerReader]:
    """Add a reader (a class decorator): ``--layer NAME:<its name>`` then reads with it."""
    _READERS[reader.name] = reader()
    return reader


for _reader in (ChannelsFirst, ChannelsLast, Pyramid, Tokens):
    register_reader(_reader)


def get_reader(name: str) -> LayerReader:
    """The reader by name; ``ValueError`` naming those there are."""
    if name not in _READERS:
        raise ValueError(f"unknown layer reader {name!r}; readers: {', '.join(_READERS)}")
    return _READERS[name]


def split_layer(spec: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME:READER`` as (name, reader or None)."""
    name, _, reader = spec.partition(":")
    return name, (reader or None)


def levels(output: object) -> list[torch.Tensor] | None:
    """The feature maps of a dict output (a feature pyramid), or None if it is not one."""
    if not isinstance(output, Mapping) or not output:
        return None
    values = list(output.values())
    if all(isinstance(v, torch.Tensor) and v.dim() == 4 for v in values):
        return values
    return None


def layout(module: nn.Module, shape: tuple[int, ...], size: tuple[int, int]) -> str | None:
    """The reader of ``module``'s 4-D output ``shape`` (1, a, b, c) for an input of ``size``
    (H, W). Known modules say it: a convolution, a 2-D norm or pooling is channels-first; a plain
    ``LayerNorm`` or ``Linear`` works on the last dimension (channels-last). Otherwise it is told
    from which pair of dimensions is a grid with the input's aspect: ``channels_last`` if only
    (a, b) is, None where both are (a (1, 7, 7, 7) output cannot be told from its shape), and
    channels-first otherwise, as every convolution's output is."""
    if isinstance(module, _CHANNELS_FIRST):
        return "channels_first"
    if channels_last(module, shape):
        return "channels_last"
    _, a, b, c = shape
    first = b * c > 1 and _grid(b, c, size)
    last = a * b > 1 and _grid(a, b, size)
    if first and last:
        return None
    return "channels_last" if last else "channels_first"


def channels_last(module: nn.Module, shape: tuple[int, ...]) -> bool:
    """Whether ``module`` is known to output channels-last when its output is 4-D: a plain
    ``LayerNorm`` or ``Linear``, which work on the last dimension. A model with none of them
    has no channels-last layer: an output whose shape cannot tell is then channels-first."""
    return len(shape) == 4 and type(module) in (nn.LayerNorm, nn.Linear)


_CHANNELS_FIRST = (
    nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm,
    nn.MaxPool2d, nn.AvgPool2d, nn.Upsample,
)  # fmt: skip


def _grid(h: int, w: int, size: tuple[int, int]) -> bool:
    """Whether (h, w) can be the input's (H, W) seen through one stride: the same aspect within
    a cell of rounding."""
    height, width = size
    return abs(h * width - w * height) <= max(height, width)
