"""``lrp_epsilon_plus_flat``: z-plus at convolutions, epsilon at linear layers, flat at the
first layer (zennit's composite of that name)."""

from __future__ import annotations

from typing import Any

from ..engine.lrp.method import LRPMethod
from ..engine.lrp.plan import RuleSet
from ..engine.lrp.rules import alpha_beta_rule, epsilon_rule, flat_rule
from ..engine.method import PathContext
from ..engine.registry import register_method


@register_method
class EpsilonPlusFlat(LRPMethod):
    name = "lrp_epsilon_plus_flat"
    summary = "LRP: as lrp_epsilon_plus, flat at the first layer (Lapuschkin et al. 2019)"
    order = 76

    def rules(self, settings: dict[str, Any], context: PathContext) -> RuleSet:
        return RuleSet(alpha_beta_rule(1.0, 0.0), epsilon_rule(settings["epsilon"]), flat_rule)
