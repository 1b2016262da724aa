"""Choosing and capturing the feature-map layer that Grad-CAM explains.

A candidate is a submodule that runs once per forward pass and outputs a feature map
(B, C, h, w) with more than one spatial position, other than pooling, dropout, identity or
flatten modules. The default is the last candidate to finish in the forward pass: the outermost
module around the network's final feature map (``layer4`` for a ResNet, ``features`` for VGG,
DenseNet and MobileNet, ``Mixed_7c`` for Inception v3, ``bn2`` for timm's EfficientNets).

A module that outputs a dict of feature maps (a feature pyramid: a detector's ``backbone``) is a
candidate too, read as pytorch-grad-cam's ``fasterrcnn_reshape_transform`` reads it: each level's
absolute value resized bilinearly to its last (coarsest) level's grid, concatenated along the
channels; its gradients are read the same way. A model may name its default with a
``cam_layer`` attribute (a :class:`~saliency.Detector` names its backbone).
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_NOT_FEATURES = (
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.LPPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Flatten,
)

# model -> (input shape, candidates): the probe runs once per model and input shape
_PROBED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], list[LayerInfo]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class LayerInfo:
    """A submodule seen in a forward pass: its name, output shape (None if not a tensor), calls."""

    name: str
    shape: tuple[int, ...] | None
    calls: int
    kind: str

    @property
    def is_candidate(self) -> bool:
        """Whether Grad-CAM can explain this layer's output: one feature map per input (a
        detector's pooled proposals are not)."""
        return self.calls == 1 and _is_feature_map(self.shape) and self.kind == "features"


def _is_feature_map(shape: tuple[int, ...] | None) -> bool:
    return shape is not None and len(shape) == 4 and shape[0] == 1 and shape[2] * shape[3] > 1


def _levels(output: object) -> list[torch.Tensor] | None:
    """The feature maps of a dict output (a feature pyramid), or None if it is not one."""
    if not isinstance(output, Mapping) or not output:
        return None
    values = list(output.values())
    if all(isinstance(v, torch.Tensor) and v.dim() == 4 for v in values):
        return values
    return None


def pyramid(levels: Sequence[torch.Tensor]) -> torch.Tensor:
    """A feature pyramid's levels as one feature map, as pytorch-grad-cam's
    ``fasterrcnn_reshape_transform``: each level's absolute value resized bilinearly to the
    last level's grid, concatenated along the channels."""
    size = levels[-1].shape[-2:]
    return torch.cat([F.interpolate(level.abs(), size, mode="bilinear") for level in levels], 1)


def _output_shape(output: object) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    levels = _levels(output)
    if levels is None:
        return None
    last = levels[-1].shape
    return (last[0], sum(level.shape[1] for level in levels), last[2], last[3])


def probe_layers(
    model: nn.Module, inputs: torch.Tensor, any_shape: bool = False
) -> list[LayerInfo]:
    """Run ``model`` once on the first input (no gradient) and describe every submodule that ran,
    in the order they finished. The model is expected in eval mode (see ``forward_pass``).

    The answer is kept per model and input shape; with ``any_shape`` an answer for another
    shape will do (layer names and call counts do not depend on it)."""
    shape = tuple(inputs.shape[1:])
    cached = _PROBED.get(model)
    if cached is not None and (any_shape or cached[0] == shape):
        return cached[1]
    seen: dict[str, list] = {}  # name -> [shape, calls, kind], in finishing order
    handles = []

    def record(name: str, module: nn.Module):
        def hook(mod: nn.Module, args: object, output: object) -> None:
            entry = seen.pop(name, None) or [None, 0, ""]
            entry[0] = _output_shape(output)
            entry[1] += 1
            entry[2] = "other" if isinstance(mod, _NOT_FEATURES) else "features"
            seen[name] = entry  # re-inserted: the order is that of the last finish

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(record(name, module)))
        with torch.no_grad():
            model(inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
    infos = [LayerInfo(name, s, calls, kind) for name, (s, calls, kind) in seen.items()]
    _PROBED[model] = (shape, infos)
    return infos


def feature_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the layers Grad-CAM can explain for ``inputs``, in the order they finish."""
    return [info.name for info in probe_layers(model, inputs) if info.is_candidate]


def resolve_layer(model: nn.Module, inputs: torch.Tensor, name: str | None = None) -> str:
    """The layer to explain: ``name`` checked, or the default (the last candidate).

    Raises ``ValueError`` naming the candidates when ``name`` is unknown or unusable, or when the
    model has no feature-map layer at all.
    """
    infos = probe_layers(model, inputs, any_shape=name is not None)
    candidates = [info.name for info in infos if info.is_candidate]
    if name is None:
        if not candidates:
            raise ValueError(
                "found no layer with a feature-map output (B, C, h, w) for Grad-CAM; "
                "is this a convolutional network?"
            )
        return _preferred(model, candidates)
    by_name = {info.name: info for info in infos}
    info = by_name.get(name)
    if info is not None and info.is_candidate:
        return name
    if info is None:
        exists = name in dict(model.named_modules())
        reason = "did not run in the forward pass" if exists else "is not a submodule"
    elif info.calls != 1:
        reason = f"runs {info.calls} times in one forward pass, so its output is ambiguous"
    elif info.kind != "features":
        reason = "is a pooling, dropout, identity or flatten module"
    else:
        reason = f"outputs {_shape(info.shape)}, not a feature map (B, C, h, w) with h*w > 1"
    raise ValueError(f"layer {name!r} {reason}; {_candidates_hint(name, candidates)}")


def _preferred(model: nn.Module, candidates: list[str]) -> str:
    """The model's own ``cam_layer`` if it is a candidate, else the last candidate inside it,
    else the last candidate."""
    named = getattr(model, "cam_layer", None)
    if isinstance(named, str):
        inside = [c for c in candidates if c == named or c.startswith(named + ".")]
        if named in inside:
            return named
        if inside:
            return inside[-1]
    return candidates[-1]


def _shape(shape: tuple[int, ...] | None) -> str:
    return "no tensor" if shape is None else "shape (" + ", ".join(map(str, shape)) + ")"


def _candidates_hint(name: str, candidates: list[str], shown: int = 12) -> str:
    if not candidates:
        return "this model has no feature-map layer"
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.6)
    deepest = list(reversed(candidates))
    listed = ", ".join(deepest[:shown]) + (
        f" and {len(deepest) - shown} more" if len(deepest) > shown else ""
    )
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return f"{hint}feature-map layers, deepest first: {listed}"


class LayerCapture:
    """Keep the output of one submodule during a forward pass, for Grad-CAM.

    The hook hands the rest of the network a copy of the output, so later in-place operations
    (an in-place ReLU, ``+=``) cannot change the captured activation or its gradient. A feature
    pyramid's levels are kept each, and read as one map (see :func:`pyramid`).
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        self.name = name
        self.module = dict(model.named_modules())[name]
        self.output: torch.Tensor | None = None
        self.levels: list[torch.Tensor] | None = None
        self.calls = 0
        self._handle = None

    def __enter__(self) -> LayerCapture:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def _hook(self, module: nn.Module, args: object, output: object) -> object:
        self.calls += 1
        levels = _levels(output)
        if levels is not None:
            assert isinstance(output, Mapping)
            self.levels = levels  # read as one map when asked for (activation), not here
            copy = type(output)((key, value.clone()) for key, value in output.items())  # type: ignore[call-arg]
            return copy
        if not isinstance(output, torch.Tensor):
            return None
        self.output = output
        return output.clone()

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def activation(self) -> torch.Tensor:
        """The captured feature map (B, C, h, w); raises ``ValueError`` if there is none."""
        if self.levels is not None and self.output is None and self.calls == 1:
            with torch.no_grad():  # the map is read, never differentiated (see gradient)
                self.output = pyramid(self.levels)
        if self.calls != 1 or self.output is None or self.output.dim() != 4:
            raise ValueError(
                f"layer {self.name!r} ran {self.calls} times in the forward pass"
                if self.calls != 1
                else f"layer {self.name!r} gave no feature map (B, C, h, w)"
            )
        return self.output

    def sources(self) -> list[torch.Tensor]:
        """What the layer's gradient is taken with respect to: its output, or each level."""
        self.activation()
        assert self.output is not None
        return self.levels if self.levels is not None else [self.output]

    def gradient(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The gradients with respect to :meth:`sources` (None: unused) read as the activation
        is: the output's own, or a pyramid's levels read as one map."""
        sources = self.sources()
        pairs = zip(grads, sources, strict=True)
        filled = [torch.zeros_like(s) if g is None else g for g, s in pairs]
        return filled[0] if self.levels is None else pyramid(filled)


def captured(model: nn.Module, name: str, inputs: torch.Tensor) -> torch.Tensor:
    """The feature map (B, K, h, w) of layer ``name`` for ``inputs``: one forward pass whose
    output is discarded, for the methods that read a layer without a gradient."""
    with LayerCapture(model, name) as capture:
        model(inputs)
        return capture.activation()
