"""Backprop saliency maps for CNN image classifiers: Gradients, DeconvNet, Guided Backprop."""

from __future__ import annotations

from .errors import ImageError, ModelError, RuleCoverageWarning, RuleError, SaliencyError
from .explain import Explanation, ForwardPass, explain, forward_pass, resolve_targets
from .hooks import RuleHooks, RuleReport, find_units
from .rules import RULES, Rule, get_rule

__version__ = "0.1.0"

__all__ = [
    "RULES",
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
