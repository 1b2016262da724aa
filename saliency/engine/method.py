"""The method template: what a method needs from the shared passes, and how it combines them.

A method is a :class:`Method` subclass in a module of its own, registered with
:func:`saliency.register_method`. It declares ``passes``, the shared passes it reads:

* :class:`RulePass` ``(rule)``: d score / d input with that ReLU rule at every unit;
* :data:`LAYER`: d score / d the chosen feature-map layer's activations, with the activations:
  what every CAM method weighs (:attr:`SharedPasses.layer`);
* :data:`ATTENTION`: d score / d every block's attention weights, with the weights: what
  gradient-weighted rollout weighs (:attr:`SharedPasses.attention`).

The planner runs one forward pass per batch and each distinct declared pass once per target set,
whatever the methods, then calls each method's :meth:`Method.combine`. A method that declares no
shared pass runs passes of its own in :meth:`Method.compute` (Integrated Gradients' path).
SmoothGrad wraps any method: it runs the same plan on noisy copies and averages.

A method owns its settings (``settings``, a tuple of :class:`~.settings.Setting`); it reads their
values with ``shared.settings(self)`` in :meth:`Method.combine` or ``context.options.of(self)`` in
:meth:`Method.compute`, and the run records those that change its maps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .needs import ATTENTION as ATTENTION_WEIGHTS
from .needs import FEATURE_LAYER, RELU_UNITS
from .report import RuleReport
from .settings import Setting

if TYPE_CHECKING:
    from ..explanation import Explanation
    from .attention import AttentionMaps
    from .objectives import Target


class Settings(Protocol):
    """What a method reads of its run's options (a :class:`~saliency.MethodOptions`), named
    here so that this template imports no options module."""

    @property
    def batch_size(self) -> int: ...

    @property
    def seed(self) -> int: ...

    @property
    def layer(self) -> str | None: ...

    def of(self, method: Method) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RulePass:
    """A backward pass from the class score to the input under ``rule`` (see :mod:`.rules`)."""

    rule: str


@dataclass(frozen=True)
class LayerPass:
    """A backward pass from the class score down to the Grad-CAM layer: the upsampled CAM."""


@dataclass(frozen=True)
class AttentionPass:
    """A backward pass from the score down to every block's attention weights."""


LAYER = LayerPass()
ATTENTION = AttentionPass()
Pass = RulePass | LayerPass | AttentionPass


LAYER_SETTING = Setting(
    "layer",
    str,
    None,
    "the feature-map layer, a submodule such as layer4; auto: the last feature-map stage",
    optional=True,
)


def upsampled(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """A class activation map at a layer (B, 1, h, w), negative parts cut (ReLU), then enlarged
    bilinearly to ``size`` (H, W): (B, 1, H, W), as every CAM method draws it."""
    return F.interpolate(cam.clamp(min=0), size=size, mode="bilinear", align_corners=False)


@dataclass
class LayerGradients:
    """A feature-map layer's activations ``A`` (B, K, h, w), detached, and the gradient of the
    class score with respect to them ``G``, of the same shape."""

    activations: torch.Tensor
    gradients: torch.Tensor


@dataclass
class SharedPasses:
    """What :meth:`Method.combine` reads: the inputs of the pass, each declared rule's gradient
    (``grads[rule]``, shaped like the inputs), the layer pass's :class:`LayerGradients`
    (``layer``), and the run's options, from which :meth:`settings` reads a method's own."""

    inputs: torch.Tensor
    grads: dict[str, torch.Tensor]
    layer: LayerGradients | None = None
    options: Settings | None = None
    attention: AttentionMaps | None = None  # the attention pass's weights and gradients

    def settings(self, method: Method) -> dict[str, Any]:
        """``method``'s settings: the values given, or their defaults."""
        if self.options is None:
            return {s.name: s.default for s in method.all_settings}
        return self.options.of(method)

    def upsampled(self, cam: torch.Tensor) -> torch.Tensor:
        """A class activation map at the layer, enlarged to the inputs (see :func:`upsampled`)."""
        return upsampled(cam, tuple(self.inputs.shape[-2:]))

    @cached_property
    def cam(self) -> torch.Tensor:
        """Grad-CAM's map, upsampled: the layer's channels weighted by their spatially averaged
        gradient, summed (computed once, for every method that reads it)."""
        assert self.layer is not None, "no layer pass was declared"
        weights = self.layer.gradients.mean(dim=(2, 3), keepdim=True)
        return self.upsampled((weights * self.layer.activations).sum(dim=1, keepdim=True))


@dataclass
class PathContext:
    """What :meth:`Method.compute` gets: the model, the inputs (noisy copies under SmoothGrad),
    ``clean``, the inputs before any noise (baselines come from them), one target (bound to the
    clean output; see :mod:`.objectives`) per target set, the logits of ``inputs`` when
    already computed, the options, the input normalization (mean, std) if known,
    ``should_stop`` to ask between passes, and ``read``: the feature-map layer's name and
    activations (B, K, h, w), read by the forward pass that made ``logits`` when a chosen
    method explains a layer (see :meth:`layer_activations`)."""

    model: nn.Module
    inputs: torch.Tensor
    clean: torch.Tensor
    target_sets: list[Target]
    logits: torch.Tensor | None
    options: Settings
    normalization: tuple[Sequence[float], Sequence[float]] | None = None
    should_stop: Callable[[], bool] | None = None
    read: tuple[str, torch.Tensor] | None = None
    attention: AttentionMaps | None = None  # read by the logits' pass for reads_attention

    def layer_activations(self) -> tuple[str, torch.Tensor]:
        """The layer to explain (``options.layer``, or found) and its activations for
        ``inputs``: those the logits' forward pass read, else from one forward pass now."""
        from .layers import captured, resolve_layer
        from .state import explanation_mode

        wanted = self.options.layer
        if self.read is not None and wanted in (None, self.read[0]):
            return self.read
        model, size = self.model, self.options.batch_size
        with torch.no_grad(), explanation_mode(model):
            layer = resolve_layer(model, self.inputs[:1], wanted)
            parts = [captured(model, layer, part) for part in self.inputs.split(size)]
            return layer, torch.cat(parts)


@dataclass
class MethodOutput:
    """One target set's result of :meth:`Method.compute`: the maps, where a rule was applied,
    and per-sample ``values`` (B,) that SmoothGrad averages (e.g. a completeness error)."""

    maps: torch.Tensor
    report: RuleReport
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    layer: str | None = None  # the feature-map layer it explained, if any


class Method:
    """A saliency method: subclass it and register it with [saliency.register_method][].

    Set the class attributes, then either declare the shared ``passes`` it reads and override
    [combine][saliency.Method.combine], or declare none and override
    [compute][saliency.Method.compute] to run passes of its own. [Writing a
    method](../writing-a-method.md) shows one end to end.

    Attributes:
        name: The name for ``explain(method=...)`` and ``--method``.
        summary: One line: what the map shows, and the paper.
        cost: One line: what it costs in passes, per batch and target.
        passes: The shared passes it reads: ``RulePass("guided")`` (a rule's gradient at the
            input), ``LAYER`` (the CAM layer's activations and gradients) or ``ATTENTION``
            (every block's attention and its gradients). The planner runs
            each declared pass once per batch and target, whatever the methods.
        order: Its place in listings and in ``all`` (built-ins use 10 to 99).
        explains_layer: True for a method with passes of its own that explains a feature-map
            layer (``layer`` then applies); a ``LAYER`` pass implies it.
        reads_attention: True for a method with passes of its own that reads the attention
            weights of the logits' forward pass (``context.attention``), as rollout does.
        random: True for a method that draws at random from the run's ``seed`` (its maps,
            fingerprint and rows then depend on it).
        slow: True for a method that runs a forward pass per channel, window or mask:
            ``compare`` leaves it out unless it is asked for.
        settings: Its own settings: keywords of ``explain()``, ``--set`` in the command, and,
            where they change the maps, parts of the fingerprint and of each manifest row.
        needs: What it needs of a model beyond a feature layer (``uses_layer``) and
            ReLU-family units (a rule pass): ``class logits`` (LRP), ``box targets``
            (``drise``), ``attention`` (see :mod:`saliency.engine.needs`). It applies to the
            kinds of model that provide all it needs; ``all`` holds those.
        instead: The method to name where it does not apply (``rise`` for ``drise``).
        tunable: False for a method whose rules read the model's layers themselves (LRP folds
            each batch norm from its statistics): a folder run then keeps the model's pass as
            loaded rather than :func:`~saliency.models.tuning.tuned`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]  # one line: what the map shows, and the paper
    cost: ClassVar[str]  # one line: what it costs in passes, per batch and target
    passes: ClassVar[tuple[Pass, ...]] = ()
    order: ClassVar[int] = 100  # place in listings and in ``all`` (built-ins use 10..99)
    # True for a method with passes of its own that explains a feature-map layer (``layer``
    # applies, resolved as for a LAYER pass); a LAYER pass implies it
    explains_layer: ClassVar[bool] = False
    reads_attention: ClassVar[bool] = False  # reads context.attention (see the docstring)
    # True for a method that draws at random from the run's ``seed`` (which its maps, fingerprint
    # and rows then depend on, as SmoothGrad's do)
    random: ClassVar[bool] = False
    # True for a method that runs a forward pass per channel, window or mask (hundreds or
    # thousands an image): ``compare`` leaves it out unless it is asked for
    slow: ClassVar[bool] = False
    # Its own settings (a LAYER pass brings ``layer`` too): keyword arguments of explain(),
    # options of the CLI, and, where they change the maps, parts of the fingerprint and the row.
    settings: ClassVar[tuple[Setting, ...]] = ()
    # What it needs of a model (see saliency.engine.needs) beyond what its passes imply: it
    # applies to the kinds that provide it all; ``all`` holds those, others are refused.
    needs: ClassVar[frozenset[str]] = frozenset()
    instead: ClassVar[str | None] = None  # the method to name where it does not apply
    # False where its rules read the layers themselves (LRP): the model is then not tuned
    tunable: ClassVar[bool] = True

    @property
    def requires(self) -> frozenset[str]:
        """All it needs of a model: its ``needs``, a feature layer if it explains one, and
        ReLU-family units if a rule pass swaps their backward pass."""
        found = set(self.needs) | ({FEATURE_LAYER} if self.uses_layer else set())
        if self.reads_attention or ATTENTION in self.passes:
            found.add(ATTENTION_WEIGHTS)
        rules = [p.rule for p in self.passes if isinstance(p, RulePass)]
        return frozenset(found | ({RELU_UNITS} if set(rules) - {"gradient"} else set()))

    def applies_to(self, provides: frozenset[str] | None) -> bool:
        """Whether it explains a model whose kind provides ``provides`` (None: any)."""
        return provides is None or self.requires <= provides

    @property
    def uses_layer(self) -> bool:
        """Whether the method explains a feature-map layer (``--layer`` applies)."""
        return LAYER in self.passes or self.explains_layer

    @property
    def all_settings(self) -> tuple[Setting, ...]:
        """Every setting of the method: ``layer`` if it has a layer pass, then its own."""
        return (LAYER_SETTING,) * self.uses_layer + self.settings

    @property
    def depends_on(self) -> tuple[Setting, ...]:
        """The settings this method's maps depend on (SmoothGrad's aside)."""
        return tuple(s for s in self.all_settings if s.changes_maps)

    @property
    def rule(self) -> str | None:
        """The rule of its first rule pass, whose report it carries; None if it has none."""
        return next((p.rule for p in self.passes if isinstance(p, RulePass)), None)

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        """The maps from the shared passes.

        Args:
            shared: The passes declared, run once per batch and target: ``grads[rule]``, the
                layer pass (``cam``, ``layer``), the ``inputs``, and
                ``settings(method)`` for the method's settings.

        Returns:
            The maps (B, C, H, W); by default the result of the one declared pass.
        """
        (only,) = self.passes
        if isinstance(only, RulePass):
            return shared.grads[only.rule]
        return shared.cam

    def compute(self, context: PathContext) -> list[MethodOutput]:
        """The maps of a method with passes of its own; called only when it declares no
        shared pass.

        Args:
            context: The batch, the model, the target sets and the options; a method reads its
                settings with ``context.options.of(self)``.

        Returns:
            One ``MethodOutput`` per target set.
        """
        raise NotImplementedError(f"{self.name} declares no shared pass and no compute()")

    def forwards(self, settings: Mapping[str, Any], size: tuple[int, int]) -> int | None:
        """Forward passes per image and target at input ``size`` (H, W), for a method whose
        passes of its own cost many: what a run's estimate multiplies by the model's measured
        pass. None: about one forward and one backward, nothing to warn of."""
        return None

    def shown(self, maps: torch.Tensor) -> torch.Tensor:
        """One image's maps (C, H, W) as its pictures draw them; as they are by default. A
        method whose maps carry an offset that means nothing overrides it (the maps themselves,
        as saved, evaluated and checked, stay as defined)."""
        return maps

    def check_settings(self, values: dict[str, Any]) -> None:
        """Refuse settings that are each valid but not together; none by default.

        Args:
            values: Every setting of the method by name, each checked on its own already.

        Raises:
            ValueError: The combination is not allowed (as LRP's alpha - beta must be 1).
        """

    def manifest_keys(
        self, explanation: Explanation, options: Settings
    ) -> list[dict[str, Any]]:
        """Keys beyond its settings that the method adds to each manifest row; none by default.

        Args:
            explanation: The batch's explanation (its ``values`` hold per-sample numbers).
            options: The options it ran with.

        Returns:
            One dict per sample (they may not reuse a row's own keys), as Integrated
            Gradients adds ``completeness_error``.
        """
        return [{} for _ in range(explanation.maps.shape[0])]

    def __repr__(self) -> str:
        return f"<method {self.name}>"


class CAMMethod(Method):
    """A class activation map at a feature-map layer, from the shared layer pass: a subclass
    says in :meth:`layer_map` how the layer's activations and gradients weigh into a map at
    the layer; it is cut at zero and enlarged to the input as every CAM is."""

    cost = "1 forward + 1 backward down to the layer only"
    passes = (LAYER,)

    def layer_map(self, activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """The map at the layer (B, 1, h, w) from ``activations`` A and ``gradients`` G, both
        (B, K, h, w)."""
        raise NotImplementedError(f"{type(self).__name__} must define layer_map()")

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        assert shared.layer is not None
        return shared.upsampled(self.layer_map(shared.layer.activations, shared.layer.gradients))
