"""The method template: what a method needs from the shared passes, and how it combines them.

A method is a :class:`Method` subclass in a module of its own, registered with
:func:`saliency.register_method`. It declares ``passes``, the shared passes it reads:

* :class:`RulePass` ``(rule)``: d score / d input with that ReLU rule at every unit;
* :data:`LAYER`: Grad-CAM's map at the chosen feature-map layer, upsampled to the input.

The planner runs one forward pass per batch and each distinct declared pass once per target set,
whatever the methods, then calls each method's :meth:`Method.combine`. A method that declares no
shared pass runs passes of its own in :meth:`Method.compute` (Integrated Gradients' path).
SmoothGrad wraps any method: it runs the same plan on noisy copies and averages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .baselines import baseline_kind
from .hooks import RuleReport

if TYPE_CHECKING:
    from ..explanation import Explanation


@dataclass(frozen=True)
class RulePass:
    """A backward pass from the class score to the input under ``rule`` (see :mod:`.rules`)."""

    rule: str


@dataclass(frozen=True)
class LayerPass:
    """A backward pass from the class score down to the Grad-CAM layer: the upsampled CAM."""


LAYER = LayerPass()
Pass = RulePass | LayerPass


@dataclass(frozen=True)
class MethodOptions:
    """Settings of the methods beyond the rule: Grad-CAM's ``layer`` (None: the default),
    SmoothGrad's ``smooth`` samples (0: off), ``noise`` (fraction of each input's range) and
    ``seed``, Integrated Gradients' ``steps`` and ``baseline``, and ``batch_size``: the most
    inputs per pass, also when SmoothGrad or Integrated Gradients expand the batch."""

    layer: str | None = None
    smooth: int = 0
    noise: float = 0.15
    seed: int = 0
    steps: int = 32
    baseline: str | torch.Tensor = "black"
    batch_size: int = 32

    def check(self, methods: Sequence[Method]) -> None:
        """Raise ``ValueError`` for a bad setting, or a layer that no chosen method uses."""
        smooth, noise = self.smooth, self.noise
        if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 0:
            raise ValueError(f"smooth must be a whole number of samples >= 0, got {smooth!r}")
        if smooth and not (isinstance(noise, (int, float)) and 0.0 < float(noise) < float("inf")):
            raise ValueError(f"noise must be a positive fraction of the input range, got {noise!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError(f"batch_size must be a whole number, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        steps = self.steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
        if isinstance(self.baseline, str):
            baseline_kind(self.baseline)  # validates the name
        if self.layer is not None and not any(m.uses_layer for m in methods):
            from .registry import all_methods

            users = " and ".join(m.name for m in all_methods() if m.uses_layer)
            raise ValueError(f"a layer is used only by {users}")


@dataclass
class SharedPasses:
    """What :meth:`Method.combine` reads: the inputs of the pass, each declared rule's gradient
    (``grads[rule]``, shaped like the inputs) and Grad-CAM's upsampled map ``cam`` (B, 1, H, W)."""

    inputs: torch.Tensor
    grads: dict[str, torch.Tensor]
    cam: torch.Tensor | None


@dataclass
class PathContext:
    """What :meth:`Method.compute` gets: the model, the inputs (noisy copies under SmoothGrad),
    ``clean``, the inputs before any noise (baselines come from them), one LongTensor (B,) per
    target set, the logits of ``inputs`` when already computed, the options, the input
    normalization (mean, std) if known, and ``should_stop`` to ask between passes."""

    model: nn.Module
    inputs: torch.Tensor
    clean: torch.Tensor
    target_sets: list[torch.Tensor]
    logits: torch.Tensor | None
    options: MethodOptions
    normalization: tuple[Sequence[float], Sequence[float]] | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass
class MethodOutput:
    """One target set's result of :meth:`Method.compute`: the maps, where a rule was applied,
    and per-sample ``values`` (B,) that SmoothGrad averages (e.g. a completeness error)."""

    maps: torch.Tensor
    report: RuleReport
    values: dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    """A saliency method. Subclass it, set the class attributes, and either declare ``passes``
    and override :meth:`combine`, or declare none and override :meth:`compute`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line: what the map shows, and the paper
    cost: ClassVar[str]  # one line: what it costs in passes, per batch and target
    passes: ClassVar[tuple[Pass, ...]] = ()
    order: ClassVar[int] = 100  # place in listings and in ``all`` (built-ins use 10..70)
    # The MethodOptions fields its maps depend on beyond ``layer`` (implied by a LAYER pass) and
    # SmoothGrad's: a folder rerun with another value of one of them redoes its pictures.
    settings: ClassVar[tuple[str, ...]] = ()

    @property
    def uses_layer(self) -> bool:
        """Whether the method explains a feature-map layer (``--layer`` applies)."""
        return LAYER in self.passes

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Every :class:`MethodOptions` field this method's maps depend on, SmoothGrad aside."""
        return ("layer",) * self.uses_layer + self.settings

    @property
    def rule(self) -> str | None:
        """The rule of its first rule pass, whose report it carries; None if it has none."""
        return next((p.rule for p in self.passes if isinstance(p, RulePass)), None)

    def combine(self, shared: SharedPasses) -> torch.Tensor:
        """The maps from the shared passes; by default the result of the one declared pass."""
        (only,) = self.passes
        if isinstance(only, RulePass):
            return shared.grads[only.rule]
        assert shared.cam is not None
        return shared.cam

    def compute(self, context: PathContext) -> list[MethodOutput]:
        """The maps of a method with passes of its own, one :class:`MethodOutput` per target
        set. Only called for methods that declare no shared pass."""
        raise NotImplementedError(f"{self.name} declares no shared pass and no compute()")

    def manifest_keys(
        self, explanation: Explanation, options: MethodOptions
    ) -> list[dict[str, Any]]:
        """Per sample, the keys this method adds to a manifest row (the Grad-CAM layer here)."""
        extra = {"layer": explanation.layer} if explanation.layer is not None else {}
        return [dict(extra) for _ in range(explanation.maps.shape[0])]

    def __repr__(self) -> str:
        return f"<method {self.name}>"
