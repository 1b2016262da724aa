"""Saliency maps that explain vision models (classifiers, multi-label classifiers, segmentation
models, detectors, embeddings): the gradient rules (Gradients, DeconvNet, Guided Backprop), the
CAM family, Integrated Gradients, Gradient x Input, LRP, Occlusion, RISE and D-RISE, attention
rollout and gradient-weighted rollout for vision transformers, and SmoothGrad over any of them,
on one engine (``saliency.method_names()`` lists them).

``import saliency`` is cheap: each public name is imported on first use. Everything not listed in
``__all__`` lives in documented submodules: :mod:`saliency.engine` (rules, hooks, passes, the
method template and registry), :mod:`saliency.methods`, :mod:`saliency.models`,
:mod:`saliency.files`, :mod:`saliency.pictures`, :mod:`saliency.pipeline`, :mod:`saliency.checks`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "explain": "saliency.api",
    "explain_batch": "saliency.api",
    "evaluate": "saliency.evaluation.run",
    "Explanation": "saliency.explanation",
    "load_model": "saliency.models.loading",
    "LoadedModel": "saliency.models.loading",
    "load_image": "saliency.files.images",
    "read_maps": "saliency.files.raw_maps",
    "render": "saliency.pictures.render",
    "RenderOptions": "saliency.pictures.render",
    "run_sanity": "saliency.checks.sanity",
    "RuleHooks": "saliency.engine.hooks",
    "Method": "saliency.engine.method",
    "MethodOptions": "saliency.engine.options",
    "Setting": "saliency.engine.settings",
    "register_method": "saliency.engine.registry",
    "get_method": "saliency.engine.registry",
    "method_names": "saliency.engine.registry",
    "SaliencyError": "saliency.errors",
    "Target": "saliency.engine.objectives",
    "ClassTarget": "saliency.engine.objectives",
    "RegionTarget": "saliency.engine.objectives",
    "SimilarityTarget": "saliency.engine.objectives",
    "ScoreTarget": "saliency.engine.objectives",
    "BoxScoreTarget": "saliency.engine.boxes",
    "DRiseTarget": "saliency.engine.boxes",
    "Detector": "saliency.models.detection",
    "tuned": "saliency.models.tuning",
    "Kind": "saliency.tasks.kind",
    "Request": "saliency.tasks.kind",
    "TargetPlan": "saliency.tasks.plan",
    "register_kind": "saliency.tasks.registry",
    "get_kind": "saliency.tasks.registry",
    "RuleError": "saliency.errors",
    "ModelError": "saliency.errors",
    "WeightsUnavailable": "saliency.errors",
    "ImageError": "saliency.errors",
    "OutputBusyError": "saliency.errors",
    "UnsafePathError": "saliency.errors",
    "RuleCoverageWarning": "saliency.errors",
}

__all__ = [
    "BoxScoreTarget",
    "ClassTarget",
    "DRiseTarget",
    "Detector",
    "Explanation",
    "ImageError",
    "Kind",
    "LoadedModel",
    "Method",
    "MethodOptions",
    "ModelError",
    "OutputBusyError",
    "RegionTarget",
    "RenderOptions",
    "Request",
    "RuleCoverageWarning",
    "RuleError",
    "RuleHooks",
    "SaliencyError",
    "ScoreTarget",
    "Setting",
    "SimilarityTarget",
    "Target",
    "TargetPlan",
    "UnsafePathError",
    "WeightsUnavailable",
    "evaluate",
    "explain",
    "explain_batch",
    "get_kind",
    "get_method",
    "load_image",
    "load_model",
    "method_names",
    "read_maps",
    "register_kind",
    "register_method",
    "render",
    "tuned",
    "run_sanity",
]

if TYPE_CHECKING:
    from .api import explain, explain_batch
    from .checks.sanity import run_sanity
    from .engine.boxes import BoxScoreTarget, DRiseTarget
    from .engine.hooks import RuleHooks
    from .engine.method import Method
    from .engine.objectives import (
        ClassTarget,
        RegionTarget,
        ScoreTarget,
        SimilarityTarget,
        Target,
    )
    from .engine.options import MethodOptions
    from .engine.registry import get_method, method_names, register_method
    from .engine.settings import Setting
    from .errors import (
        ImageError,
        ModelError,
        OutputBusyError,
        RuleCoverageWarning,
        RuleError,
        SaliencyError,
        UnsafePathError,
        WeightsUnavailable,
    )
    from .evaluation.run import evaluate
    from .explanation import Explanation
    from .files.images import load_image
    from .files.raw_maps import read_maps
    from .models.detection import Detector
    from .models.loading import LoadedModel, load_model
    from .models.tuning import tuned
    from .pictures.render import RenderOptions, render
    from .tasks.kind import Kind, Request
    from .tasks.plan import TargetPlan
    from .tasks.registry import get_kind, register_kind


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'saliency' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
