"""A kind of model as one object: what its output is, and everything around the score that
follows from that.

A kind recognizes and builds its models, says which of a run's options it takes (the others are
refused naming the kinds that take them: :func:`~.registry.check_request`), makes the plan of
what each image's pictures explain (:mod:`.plan`), says what methods can find in it
(``provides``: a method's ``needs`` must be among them), which metrics ``evaluate`` offers, and
whether the device pipeline and the tuned pass apply. Subclass :class:`Kind`, register it with
[saliency.register_kind][], and the commands, the pipeline and the report take it as they take
the built-in ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import os

    import torch
    from PIL import Image
    from torch import nn

    from ..geometry import Geometry
    from ..models.preprocess import Preprocessing
    from .plan import TargetPlan

from ..engine.needs import (  # noqa: F401  (re-exported: what kinds provide)
    ATTENTION,
    BOX_TARGETS,
    CLASS_LOGITS,
    FEATURE_LAYER,
    LAYER_RULES,
    NEEDS,
    RELU_UNITS,
)  # fmt: skip

# a Request's options as the command spells them
FLAGS = {
    "target": "--target",
    "reference": "--similar-to/--different-from",
    "min_score": "--min-score",
    "max_detections": "--max-detections",
    "per_box_normalize": "--per-box-normalize",
}


@dataclass(frozen=True)
class Request:
    """What a run is asked to explain, as given (None and the defaults: not given); each kind
    takes the parts it understands and refuses the rest.

    Attributes:
        target: ``top1``, ``topk:N``, a class index or a class name.
        reference: A photo whose embedding the pictures explain the similarity to.
        different: With ``reference``: explain 1 - the similarity.
        min_score: The least score of a target found in an image (a detection, a class of a
            multi-label classifier).
        max_detections: The most detections explained per image.
        per_box_normalize: A detection's map renormalised inside its box.
        fit: How photos are fitted to the model (the reference's too).
    """

    target: str = "top1"
    reference: str | os.PathLike[str] | None = None
    different: bool = False
    min_score: float | None = None
    max_detections: int | None = None
    per_box_normalize: bool = False
    fit: str | None = None

    def given(self) -> list[str]:
        """The options given (not at their defaults), by name."""
        defaults = Request()
        return [
            f.name
            for f in fields(self)
            if f.name in FLAGS and getattr(self, f.name) != getattr(defaults, f.name)
        ]


class Loaded(Protocol):
    """What a kind reads of a loaded model (a :class:`~saliency.Loaded`), named here so
    that the kinds and the loading that carries them import each other in no circle."""

    name: str
    model: nn.Module
    categories: list[str]
    device: torch.device
    preprocessing: Preprocessing

    @property
    def default_fit(self) -> str: ...

    def preprocess(
        self, image: Image.Image, fit: str | None = None
    ) -> tuple[torch.Tensor, Geometry]: ...


class Kind:
    """A kind of model: subclass it and register it with [saliency.register_kind][].

    Attributes:
        name: Its name (``classification``, ``detection``, ...): ``--kind`` and
            ``load_model(kind=...)``.
        summary: One line: what its output is and what its pictures explain.
        order: Its place in listings and in recognizing a model (built-ins use 10 to 99).
        provides: What methods can find in its models (see ``Method.needs``).
        takes: The request's options it takes (see :class:`Request`); others are refused.
        implied_by: Options that ask for this kind when the model is loaded (an embedding's
            reference photo).
        made_from: The kinds whose models it is made from when asked for by name (an
            embedding from a classifier, its head removed).
        device_pipeline: Whether its pictures can be drawn on the model's device.
        untuned: Why its pass is never tuned (None: it may be).
        loads_weights: Whether its ``build`` loads a local checkpoint itself.
        metrics: The ``evaluate`` metrics that apply to it.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    order: ClassVar[int] = 100
    provides: ClassVar[frozenset[str]] = frozenset({FEATURE_LAYER, RELU_UNITS})
    takes: ClassVar[frozenset[str]] = frozenset({"target"})
    implied_by: ClassVar[frozenset[str]] = frozenset()
    made_from: ClassVar[tuple[str, ...]] = ()
    device_pipeline: ClassVar[bool] = True
    untuned: ClassVar[str | None] = None
    loads_weights: ClassVar[bool] = False  # build() loads a local checkpoint itself
    metrics: ClassVar[tuple[str, ...]] = (
        "deletion", "insertion", "road_morf", "road_lerf", "class_sensitivity",
    )  # fmt: skip

    # loading
    def recognizes(self, source: str, arch: str) -> bool:
        """Whether a model by this name is of this kind (``source``: ``default``,
        ``torchvision`` or ``timm``)."""
        return False

    def build(
        self, source: str, arch: str, tag: str | None, weights: str | os.PathLike[str] | None
    ) -> tuple[nn.Module, Preprocessing, list[str]]:
        """The model, its preprocessing and class names; ``weights``: None for pretrained,
        ``"random"``, or a local checkpoint (loaded by the caller unless this kind did)."""
        from ..models.zoo import build_lite0, build_timm, build_torchvision, imagenet_categories

        if source == "default":
            random_init = weights is not None and str(weights) == "random"
            model, prep = build_lite0(pretrained=weights is None and not random_init)
            return model, prep, imagenet_categories()
        if source == "torchvision":
            return build_torchvision(arch, tag, pretrained=weights is None)
        return build_timm(arch, pretrained=weights is None)

    def finish(self, model: nn.Module, categories: list[str]) -> tuple[nn.Module, list[str]]:
        """The model and classes once loaded (an embedding removes the head); as they are."""
        return model, categories

    # what a run explains
    def plan(self, loaded: Loaded, request: Request) -> TargetPlan:
        """What a folder run explains in each image; ``ValueError`` for what does not fit."""
        raise NotImplementedError(f"the kind {self.name!r} defines no plan()")

    def __repr__(self) -> str:
        return f"<kind {self.name}>"

