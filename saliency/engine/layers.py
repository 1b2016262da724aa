"""Choosing and capturing the feature-map layer that Grad-CAM explains.

A candidate is a submodule that runs once per forward pass and outputs a feature map with more
than one spatial position, other than pooling, dropout, identity or flatten modules: a grid
(B, C, h, w) or (B, h, w, C), or a dict of grids (a feature pyramid: a detector's ``backbone``),
each read by its layer reader (:mod:`.readers`). The default is the last candidate to finish in
the forward pass: the outermost module around the network's final feature map (``layer4`` for a
ResNet, ``features`` for VGG, DenseNet and MobileNet, ``Mixed_7c`` for Inception v3, ``bn2``
for timm's EfficientNets, ``norm`` (channels-last) for timm's Swin). A model may name its
default with a ``cam_layer`` attribute, its reader too (a :class:`~saliency.Detector` names its
backbone; ``"block:channels_last"``).

A vision transformer whose token layout the model tells (:mod:`.transformers`) has token
sequences (B, P + h*w, D) as candidates too, read by the ``tokens`` reader; its default is the
last block's first norm (``blocks.11.norm1``), the layer pytorch-grad-cam's ViT tutorial uses.

Never a misread map: a layer whose layout cannot be told is refused, naming the readers to
choose from (``--layer NAME:READER``); so is a default feature map that token sequences follow
in a model whose token layout is not known (its patch embedding explains none of its blocks).
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .readers import channels_last, get_reader, layout, levels, split_layer
from .transformers import input_size, token_layout

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

def _not_features(module: nn.Module) -> bool:
    """Pooling, dropout, identity and flatten modules, and torchvision's ``Permute`` (a layout
    change: a Swin's final norm, read channels-last, is its CAM layer, not the permuted copy)."""
    return isinstance(module, _NOT_FEATURES) or type(module).__name__ == "Permute"


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
    layout: str | None = None  # its reader (see readers.layout); None: cannot be told
    tokens: bool = False  # a layer norm over a token sequence (1, N, C): a transformer's

    @property
    def is_candidate(self) -> bool:
        """Whether Grad-CAM can explain this layer's output: one feature map per input (a
        detector's pooled proposals are not), its layout told or not."""
        shape = self.shape
        if self.layout == "tokens" and shape is not None:  # told by the model's token layout
            return self.calls == 1 and self.kind == "features" and shape[0] == 1
        if self.calls != 1 or self.kind != "features" or shape is None or len(shape) != 4:
            return False
        spatial = shape[1] * shape[2] if self.layout == "channels_last" else shape[2] * shape[3]
        return shape[0] == 1 and spatial > 1


def _output_shape(output: object) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    found = levels(output)
    if found is None:
        return None
    last = found[-1].shape
    return (last[0], sum(level.shape[1] for level in found), last[2], last[3])


def _sequence(shape: tuple[int, ...] | None) -> bool:
    """Whether ``shape`` is a token sequence's (1, N, C), N > 1."""
    return shape is not None and len(shape) == 3 and shape[0] == 1 and shape[1] > 1


def _layout(module: nn.Module, output: object, size: tuple[int, int]) -> str | None:
    if levels(output) is not None:
        return "pyramid"
    if isinstance(output, torch.Tensor) and output.dim() == 4:
        return layout(module, tuple(output.shape), size)
    return None


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
    seen: dict[str, list] = {}  # name -> [shape, calls, kind, layout, tokens], finishing order
    handles = []
    size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    last_seen: list[str] = []  # the layers known to output channels-last
    tokens = token_layout(model)
    sequence = None if tokens is None else tokens.tokens(size)  # its sequences' length

    def record(name: str, module: nn.Module):
        def hook(mod: nn.Module, args: object, output: object) -> None:
            entry = seen.pop(name, None) or [None, 0, "", None, False]
            entry[0] = _output_shape(output)
            entry[1] += 1
            entry[2] = "other" if _not_features(mod) else "features"
            entry[3] = _layout(mod, output, size)
            if entry[0] is not None and len(entry[0]) == 3 and entry[0][1] == sequence:
                entry[3] = "tokens"
            if entry[0] is not None and channels_last(mod, entry[0]):
                last_seen.append(name)
            entry[4] = isinstance(mod, nn.LayerNorm) and _sequence(entry[0])
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
    if not last_seen:  # no layer is channels-last: a shape that cannot tell is channels-first
        for entry in seen.values():
            if entry[0] is not None and len(entry[0]) == 4 and entry[3] is None:
                entry[3] = "channels_first"
    infos = [LayerInfo(name, *entry) for name, entry in seen.items()]
    _PROBED[model] = (shape, infos)
    return infos


def feature_layers(model: nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the layers Grad-CAM can explain for ``inputs``, in the order they finish."""
    return [info.name for info in probe_layers(model, inputs) if info.is_candidate]


def resolve_layer(model: nn.Module, inputs: torch.Tensor, name: str | None = None) -> str:
    """The layer to explain: ``name`` (``NAME`` or ``NAME:READER``) checked, or the default
    (the last candidate), spelled with its reader where that is not the default for its output
    (``norm:channels_last``; ``layer4`` for a channels-first grid or a pyramid).

    Raises ``ValueError`` naming the candidates when ``name`` is unknown or unusable, when the
    model has no feature-map layer at all, and when a layer's layout cannot be told (naming
    the layer, its shape and the readers to choose from) or the default feature map comes
    before token sequences (a vision transformer's patch embedding).
    """
    infos = probe_layers(model, inputs, any_shape=name is not None)
    candidates = [info.name for info in infos if info.is_candidate]
    by_name = {info.name: info for info in infos}
    if name is None:
        if not candidates:
            raise ValueError(
                "found no layer with a feature-map output (B, C, h, w) for Grad-CAM; "
                "is this a convolutional network?"
            )
        named, reader = split_layer(str(getattr(model, "cam_layer", "")))
        chosen = by_name[_preferred(model, candidates)]
        if chosen.layout != "tokens":
            _refuse_before_tokens(chosen, infos)
        return _spelled(chosen, reader if chosen.name == named else None)
    base, reader = split_layer(name)
    info = by_name.get(base)
    modules = dict(model.named_modules())
    if base in modules:
        _refuse_folded(modules[base], base)
    if reader is not None:
        get_reader(reader)  # a ValueError naming the readers if unknown
    if info is not None and _readable(info, reader):
        return _spelled(info, reader)
    if info is None:
        exists = base in modules
        why = "did not run in the forward pass" if exists else "is not a submodule"
    elif info.calls != 1:
        why = f"runs {info.calls} times in one forward pass, so its output is ambiguous"
    elif info.kind != "features":
        why = "is a pooling, dropout, identity or flatten module"
    elif reader is not None:
        why = f"outputs {_shape(info.shape)}, which {reader} cannot read"
    else:
        why = f"outputs {_shape(info.shape)}, not a feature map (B, C, h, w) with h*w > 1"
    raise ValueError(f"layer {base!r} {why}; {_candidates_hint(base, candidates)}")


FOLDED = "saliency_folded_norm"  # set on a convolution by saliency.models.folding


def folded_into(module: nn.Module) -> str | None:
    """The name of the batch norm folded into ``module`` (a convolution), or None."""
    name = getattr(module, FOLDED, None)
    return name if isinstance(name, str) else None


def _refuse_folded(module: nn.Module, name: str) -> None:
    """Refuse a convolution with a batch norm folded into it (:func:`saliency.tuned`): its
    output is the norm's, not its own."""
    norm = folded_into(module)
    if norm is not None:
        raise ValueError(
            f"layer {name!r} has the batch norm {norm!r} folded into its weights "
            f"(saliency.tuned), so its output is {norm!r}'s, not its own: read {norm!r}, or "
            f"tune the model with keep=[{name!r}] (the command keeps the --layer it is given)"
        )


def _readable(info: LayerInfo, reader: str | None) -> bool:
    """Whether the layer can be read: as a candidate under its own layout, or with ``reader``
    (a reader this module does not know is checked on the output itself, when captured)."""
    if reader is None:
        return info.is_candidate
    if info.calls != 1 or info.kind != "features" or info.shape is None:
        return False
    if reader in ("channels_first", "channels_last"):
        return len(info.shape) == 4
    if reader in ("tokens", "pyramid"):
        return info.layout == reader
    return True


def _spelled(info: LayerInfo, reader: str | None) -> str:
    """The layer as resolved: its name, with the reader where that is not the default for its
    output; a ``ValueError`` where no reader is given and the layout cannot be told."""
    if reader is None and info.layout is None:
        raise ValueError(
            f"layer {info.name!r} outputs {_shape(info.shape)}: whether its channels come "
            "first (B, C, h, w) or last (B, h, w, C) cannot be told from it; name the reader: "
            f"--layer {info.name}:channels_first or --layer {info.name}:channels_last"
        )
    reader = reader or info.layout
    told = ("channels_first", "pyramid", "tokens")  # what LayerCapture reads by default
    return info.name if reader in told else f"{info.name}:{reader}"


def _refuse_before_tokens(chosen: LayerInfo, infos: list[LayerInfo]) -> None:
    """Refuse a default feature map that layer norms over token sequences (1, N, C) follow: a
    vision transformer's patch embedding, whose CAM explains none of its blocks."""
    after = infos[infos.index(chosen) + 1 :]
    tokens = [info for info in after if info.tokens]
    if tokens:
        raise ValueError(
            f"the last feature map of this model is {chosen.name!r} {_shape(chosen.shape)}, "
            f"and {len(tokens)} layer norms after it read token sequences (such as "
            f"{tokens[-1].name!r}, {_shape(tokens[-1].shape)}): a transformer, whose blocks a "
            f"CAM at {chosen.name!r} would not explain. Use a method that reads no layer "
            f"(gradient, integrated_gradients), or name a layer with --layer "
            f"(--layer {chosen.name} to explain the patch embedding itself)"
        )


def _preferred(model: nn.Module, candidates: list[str]) -> str:
    """The model's own ``cam_layer`` (``NAME`` or ``NAME:READER``, the reader then its), or a
    vision transformer's last block's first norm, if it is a candidate, else the last candidate
    inside it, else the last candidate."""
    tokens = token_layout(model)
    named = getattr(model, "cam_layer", None) or (tokens and tokens.default_layer)
    if isinstance(named, str):
        named = split_layer(named)[0]
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

    ``name`` is ``NAME`` or ``NAME:READER`` (see :func:`resolve_layer`); the output is read as
    a grid by its reader (:mod:`.readers`), and so are its gradients. The hook hands the rest of
    the network a copy of the output, so later in-place operations (an in-place ReLU, ``+=``)
    cannot change the captured activation or its gradient.
    """

    def __init__(self, model: nn.Module, name: str) -> None:
        self.name = name
        base, self.reader_name = split_layer(name)
        self.model = model
        self.module = dict(model.named_modules())[base]
        _refuse_folded(self.module, base)
        self.size: tuple[int, int] | None = None  # the input's (H, W), for a token grid
        self.output: torch.Tensor | None = None
        self.parts: list[torch.Tensor] | None = None
        self.calls = 0
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> LayerCapture:
        self._handles = [
            self.model.register_forward_pre_hook(self._input),
            self.module.register_forward_hook(self._hook),
        ]
        return self

    def _input(self, model: nn.Module, args: tuple[object, ...]) -> None:
        self.size = input_size(args) or self.size

    def _hook(self, module: nn.Module, args: object, output: object) -> object:
        self.calls += 1
        default = "pyramid" if isinstance(output, Mapping) else "channels_first"
        if isinstance(output, torch.Tensor) and output.dim() == 3:
            default = "tokens"
        self.reader = get_reader(self.reader_name or default).bound(self.model, self.size)
        self.parts = self.reader.sources(output)
        if isinstance(output, Mapping):
            if self.parts is None:
                return None
            copy = type(output)((key, value.clone()) for key, value in output.items())  # type: ignore[call-arg]
            return copy
        if not isinstance(output, torch.Tensor):
            return None
        return output.clone()

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def activation(self) -> torch.Tensor:
        """The captured output read as a grid (B, C, h, w); raises ``ValueError`` if there is
        none."""
        if self.calls != 1:
            raise ValueError(f"layer {self.name!r} ran {self.calls} times in the forward pass")
        if self.parts is None:
            expected = self.reader.expects()
            raise ValueError(f"layer {self.name!r} gave no output {self.reader.name} reads "
                             f"({expected})")  # fmt: skip
        if self.output is None:
            with torch.no_grad():  # the map is read, never differentiated (see gradient)
                self.output = self.reader.grid(self.parts)
        if self.output.dim() != 4:
            raise ValueError(f"layer {self.name!r} gave no feature map (B, C, h, w)")
        return self.output

    def sources(self) -> list[torch.Tensor]:
        """What the layer's gradient is taken with respect to: its output, or each level."""
        self.activation()
        assert self.parts is not None
        return self.parts

    def gradient(self, grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The gradients with respect to :meth:`sources` (None: unused) read as the activation
        is."""
        sources = self.sources()
        pairs = zip(grads, sources, strict=True)
        return self.reader.grid([torch.zeros_like(s) if g is None else g for g, s in pairs])


def captured(model: nn.Module, name: str, inputs: torch.Tensor) -> torch.Tensor:
    """The feature map (B, K, h, w) of layer ``name`` for ``inputs``: one forward pass whose
    output is discarded, for the methods that read a layer without a gradient."""
    with LayerCapture(model, name) as capture:
        model(inputs)
        return capture.activation()
