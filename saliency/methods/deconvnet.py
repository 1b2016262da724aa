"""``deconvnet``: positive gradient, forward mask ignored (Zeiler & Fergus 2014):
one backward pass with the ``deconvnet`` rule at every ReLU-family unit."""

from __future__ import annotations

from ..engine.method import Method, RulePass
from ..engine.registry import register_method


@register_method
class DeconvNet(Method):
    name = "deconvnet"
    summary = "positive gradient, forward mask ignored (Zeiler & Fergus 2014)"
    cost = "1 forward + 1 backward"
    passes = (RulePass("deconvnet"),)
    order = 20
