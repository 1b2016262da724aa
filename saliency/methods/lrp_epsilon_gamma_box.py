"""``lrp_epsilon_gamma_box``: gamma at convolutions, epsilon at linear layers, z-box at the
first convolution, bounded by the normalized black and white images (zennit's composite of
that name)."""

from __future__ import annotations

from typing import Any

from ..engine.lrp.method import EPSILON, LRPMethod
from ..engine.lrp.plan import RuleSet
from ..engine.lrp.propagate import box_bounds
from ..engine.lrp.rules import epsilon_rule, gamma_rule, z_box_rule
from ..engine.method import PathContext
from ..engine.registry import register_method
from ..engine.settings import Setting


@register_method
class EpsilonGammaBox(LRPMethod):
    name = "lrp_epsilon_gamma_box"
    summary = "LRP: gamma at convolutions, z-box at the first, epsilon at linear layers"
    order = 77
    settings = (
        EPSILON,
        Setting("gamma", float, 0.25, "LRP-gamma's weight on positive contributions", low=0.0),
        Setting(
            "low",
            float,
            None,
            "the z-box bound below; auto: the normalized black image",
            optional=True,
        ),
        Setting(
            "high",
            float,
            None,
            "the z-box bound above; auto: the normalized white image",
            optional=True,
        ),
    )

    def check_settings(self, values: dict[str, Any]) -> None:
        low, high = values["low"], values["high"]
        if low is not None and high is not None and low >= high:
            raise ValueError(f"{self.name}: low must be below high; got low={low:g}, high={high:g}")

    def rules(self, settings: dict[str, Any], context: PathContext) -> RuleSet:
        low, high = box_bounds(
            context.normalization, context.inputs, settings["low"], settings["high"]
        )
        return RuleSet(
            gamma_rule(settings["gamma"]),
            epsilon_rule(settings["epsilon"]),
            z_box_rule(low, high),
            first_dense=False,
        )
