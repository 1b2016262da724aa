"""A model's own pass made cheaper without changing what it computes.

On a CPU the forward and backward pass of a batch-normed CNN spends much of its time in two
places that do no arithmetic the map needs: batch norm's own backward kernel (in eval mode a
per-channel scale, yet as slow as a convolution's backward on this machine) and the layout
changes of NCHW convolutions, whose oneDNN kernels work in NHWC. :func:`tuned` removes both:

* every batch norm with running statistics becomes the per-channel affine map it computes in
  eval mode (timm's ``FrozenBatchNorm2d``; ``BatchNormAct2d`` keeps its activation module), so
  its backward is one multiplication. The engine runs every pass in eval mode, so this is the
  function it computed;
* each such norm that only a convolution's output goes into is folded into that convolution's
  weights (:mod:`~saliency.models.folding`), so the pass skips it altogether;
* the weights go to ``channels_last``, and so does every convolution's output after them.

The maps differ from the untuned model's only in float32 rounding: in float64 they agree to
1e-15; in float32 guided and Grad-CAM maps within 1e-5, while a plain gradient, whose signed
paths cancel, moves by up to 6e-3 where a unit or a max-pool switch flips on a near-tie (see
docs/performance.md). The ReLU-family units are the same modules and functions, so every rule
still reaches every unit.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from timm.layers import BatchNormAct2d, freeze_batch_norm_2d
from torch import nn

from .folding import fold_batch_norms
from .loading import LoadedModel

if TYPE_CHECKING:
    from ..engine.method import Method
    from ..tasks.kind import Kind

# exactly these types: a subclass with a forward of its own would lose it
_FREEZABLE = (nn.BatchNorm2d, BatchNormAct2d)


def tuned(model: nn.Module, keep: Collection[str] = ()) -> nn.Module:
    """A copy of ``model`` whose pass costs less and computes the same maps.

    Batch norms with running statistics become per-channel affine maps, folded into the
    convolution before them where the code proves nothing else reads its output; the weights
    are stored ``channels_last``; ``model`` itself is left as it was. Use the copy only where
    the model runs in eval mode (as ``explain`` runs it), and not for LRP, whose rules read each
    batch norm's statistics. A convolution with a norm folded in outputs the norm's values, so
    a CAM that reads it is refused: name it in ``keep`` (its norm then stays) to read it.

    Example:
        ```python
        import torch, torchvision
        from saliency import explain
        from saliency.models.tuning import tuned

        fast = tuned(torchvision.models.resnet18())
        explain(fast, torch.randn(2, 3, 64, 64), "guided").maps.shape  # (2, 3, 64, 64)
        ```
    """
    result = copy.deepcopy(model)
    if _freezable(result):  # the model is one batch norm
        result = freeze_batch_norm_2d(result)
    for parent in list(result.modules()):
        for name, child in list(parent.named_children()):
            if _freezable(child):
                setattr(parent, name, freeze_batch_norm_2d(child))
    fold_batch_norms(result, keep)
    return result.to(memory_format=torch.channels_last)


def tuned_loaded(loaded: LoadedModel, keep: Collection[str] = ()) -> LoadedModel:
    """``loaded`` with its model :func:`tuned` (its name, preprocessing and classes kept)."""
    return replace(loaded, model=tuned(loaded.model, keep))


def why_not_tuned(kind: Kind, methods: Sequence[Method]) -> str | None:
    """Why a run of ``methods`` on a model of ``kind`` cannot be tuned; None if it can."""
    if kind.untuned is not None:
        return kind.untuned
    reading = [m.name for m in methods if not m.tunable]
    if reading:
        return f"the rules of {', '.join(reading)} read the model's layers: the pass is not tuned"
    return None


def tunes(loaded: LoadedModel, methods: Sequence[Method], asked: bool | None) -> bool:
    """Whether a run tunes its model's pass: as ``asked``, or (None) on a CPU, where it was
    faster on every model measured (1.1 to 1.5x, docs/performance.md); never where
    :func:`why_not_tuned` has a reason, which ``asked=True`` raises as a ``ValueError``."""
    reason = why_not_tuned(loaded.kind, methods)
    if reason is not None and asked:
        raise ValueError(reason)
    wanted = loaded.device.type == "cpu" if asked is None else asked
    return wanted and reason is None


def _freezable(module: nn.Module) -> bool:
    """An eval-mode batch norm of exactly a type timm freezes, with running statistics."""
    if type(module) not in _FREEZABLE:
        return False
    return bool(module.track_running_stats) and module.running_var is not None
