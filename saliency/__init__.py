"""Backprop saliency maps for CNN image classifiers: Gradients, DeconvNet, Guided Backprop."""

from __future__ import annotations

from .errors import ImageError, ModelError, RuleCoverageWarning, RuleError, SaliencyError
from .explain import Explanation, ForwardPass, explain, forward_pass, resolve_targets
from .hooks import RuleHooks, RuleReport, find_units
from .images import load_image
from .models import LoadedModel, ModelInfo, list_models, load_model
from .preprocess import FIT_MODES, Geometry, Preprocessing
from .rules import RULES, Rule, get_rule

__version__ = "0.1.0"

__all__ = [
    "FIT_MODES",
    "RULES",
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
