"""Saliency maps for CNN image classifiers: Gradients, DeconvNet, Guided Backprop, Grad-CAM,
Guided Grad-CAM, Integrated Gradients, Gradient x Input, and SmoothGrad over any of them."""

from __future__ import annotations

from .errors import ImageError, ModelError, RuleCoverageWarning, RuleError, SaliencyError
from .explain import (
    Explanation,
    ForwardPass,
    MethodOptions,
    explain,
    explain_batch,
    forward_pass,
    predict,
    resolve_targets,
)
from .hooks import RuleHooks, RuleReport, find_units
from .images import load_image
from .integrated import BASELINES
from .layers import feature_layers, resolve_layer
from .methods import METHODS, Method, get_method
from .models import LoadedModel, ModelInfo, list_models, load_model
from .preprocess import FIT_MODES, Geometry, Preprocessing
from .rules import RULES, Rule, get_rule

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "FIT_MODES",
    "METHODS",
    "RULES",
    "Method",
    "MethodOptions",
    "explain_batch",
    "feature_layers",
    "get_method",
    "predict",
    "resolve_layer",
    "Geometry",
    "LoadedModel",
    "ModelInfo",
    "Preprocessing",
    "list_models",
    "load_image",
    "load_model",
    "Explanation",
    "ForwardPass",
    "ImageError",
    "ModelError",
    "Rule",
    "RuleCoverageWarning",
    "RuleError",
    "RuleHooks",
    "RuleReport",
    "SaliencyError",
    "explain",
    "find_units",
    "forward_pass",
    "get_rule",
    "resolve_targets",
]
