"""``lrp_epsilon_plus``: z-plus (alpha 1, beta 0) at every convolution, epsilon at linear
layers (zennit's composite of that name)."""

from __future__ import annotations

from typing import Any

from ..engine.lrp.method import LRPMethod
from ..engine.lrp.plan import RuleSet
from ..engine.lrp.rules import alpha_beta_rule, epsilon_rule
from ..engine.method import PathContext
from ..engine.registry import register_method


@register_method
class EpsilonPlus(LRPMethod):
    name = "lrp_epsilon_plus"
    summary = "LRP: z-plus at convolutions, epsilon at linear layers (Montavon et al. 2019)"
    order = 75

    def rules(self, settings: dict[str, Any], context: PathContext) -> RuleSet:
        return RuleSet(alpha_beta_rule(1.0, 0.0), epsilon_rule(settings["epsilon"]))
