"""``guided``: positive gradient and forward mask (Springenberg et al. 2014):
one backward pass with the ``guided`` rule at every ReLU-family unit."""

from __future__ import annotations

from ..engine.method import Method, RulePass
from ..engine.registry import register_method


@register_method
class GuidedBackprop(Method):
    name = "guided"
    summary = "positive gradient and forward mask (Springenberg et al. 2014)"
    cost = "1 forward + 1 backward"
    passes = (RulePass("guided"),)
    order = 30
