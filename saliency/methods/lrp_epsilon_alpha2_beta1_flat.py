"""``lrp_epsilon_alpha2_beta1_flat``: alpha-beta (alpha - beta = 1) at convolutions, epsilon
at linear layers, flat at the first layer (zennit's composite of that name)."""

from __future__ import annotations

from typing import Any

from ..engine.lrp.method import EPSILON, LRPMethod
from ..engine.lrp.plan import RuleSet
from ..engine.lrp.rules import alpha_beta_rule, epsilon_rule, flat_rule
from ..engine.method import PathContext
from ..engine.registry import register_method
from ..engine.settings import Setting


@register_method
class EpsilonAlpha2Beta1Flat(LRPMethod):
    name = "lrp_epsilon_alpha2_beta1_flat"
    summary = "LRP: alpha-beta at convolutions, flat at the first, epsilon at linear layers"
    order = 78
    settings = (
        EPSILON,
        Setting(
            "alpha", float, 2.0, "weight of positive contributions (alpha - beta = 1)", low=1.0
        ),
        Setting("beta", float, 1.0, "weight of negative contributions (alpha - beta = 1)", low=0.0),
    )

    def check_settings(self, values: dict[str, Any]) -> None:
        if abs(values["alpha"] - values["beta"] - 1.0) > 1e-9:
            raise ValueError(
                f"{self.name}: alpha - beta must be 1 (relevance is conserved only then); got "
                f"alpha={values['alpha']:g}, beta={values['beta']:g}"
            )

    def rules(self, settings: dict[str, Any], context: PathContext) -> RuleSet:
        return RuleSet(
            alpha_beta_rule(settings["alpha"], settings["beta"]),
            epsilon_rule(settings["epsilon"]),
            flat_rule,
        )
