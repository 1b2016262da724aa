"""``gradient``: true gradient of the class score (Simonyan et al. 2013):
one backward pass with the ``gradient`` rule at every ReLU-family unit."""

from __future__ import annotations

from ..engine.method import Method, RulePass
from ..engine.registry import register_method


@register_method
class Gradient(Method):
    name = "gradient"
    summary = "true gradient of the class score (Simonyan et al. 2013)"
    cost = "1 forward + 1 backward"
    passes = (RulePass("gradient"),)
    order = 10
