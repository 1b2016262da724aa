"""Kinds of model: classifiers, multi-label classifiers, segmentation, detectors and
embeddings, one module each; a package adds one with :func:`register_kind` (or an entry point
in the group ``saliency.kinds``). See :mod:`.kind`."""

from .kind import Kind, Request
from .plan import FOUND, ClassChoice, Decoration, Records, TargetPlan, parse_class
from .registry import all_kinds, get_kind, register_kind

__all__ = [
    "FOUND", "ClassChoice", "Decoration", "Kind", "Records", "Request", "TargetPlan",
    "all_kinds", "get_kind", "parse_class", "register_kind",
]  # fmt: skip
