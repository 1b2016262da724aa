"""The template of the LRP methods: composites of rules, with zennit's names and defaults
(Montavon et al. 2019; Kohlbrenner et al. 2020): ``epsilon`` at linear layers, a rule for
convolutions, and a first-layer rule.

* ``lrp_epsilon_plus``: z-plus at convolutions
* ``lrp_epsilon_plus_flat``: z-plus at convolutions, flat at the first layer
* ``lrp_epsilon_gamma_box``: gamma at convolutions, z-box at the first layer
* ``lrp_epsilon_alpha2_beta1_flat``: alpha-beta (2, 1) at convolutions, flat at the first layer

The starting relevance is the target's logit, so a map's sum approximates it; both are in the
manifest row (``relevance_sum``, ``logit``), for conservation at a glance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..method import Method, MethodOutput, PathContext, Settings
from ..needs import CLASS_LOGITS, LAYER_RULES
from ..report import RuleReport
from ..settings import Setting
from ..transformers import is_transformer
from .plan import RuleSet
from .propagate import relevance, require_classes

if TYPE_CHECKING:
    from ...explanation import Explanation

EPSILON = Setting(
    "epsilon", float, 1e-6, "LRP-epsilon's stabilizer at linear layers (0: LRP-0)", low=0.0
)


class LRPMethod(Method):
    """A composite of LRP rules: one forward pass, one backward pass per target set, with a
    rule at every convolution and linear layer."""

    # relevance starts at one logit of a classifier, and every layer needs a rule
    needs = frozenset({CLASS_LOGITS, LAYER_RULES})
    tunable = False  # its rules fold each batch norm into the layer below from its statistics

    cost = "1 forward + 1 backward, with each layer's rule (a few of its forward passes)"
    settings: ClassVar[tuple[Setting, ...]] = (EPSILON,)

    def rules(self, settings: dict[str, Any], context: PathContext) -> RuleSet:
        """The rules of this composite under ``settings``."""
        raise NotImplementedError

    def compute(self, context: PathContext) -> list[MethodOutput]:
        if is_transformer(context.model):
            raise ValueError(no_attention_rules(self.name, type(context.model).__name__))
        require_classes(context.target_sets)
        settings = context.options.of(self)
        rules = self.rules(settings, context)
        logits, maps, coverage = relevance(
            context.model, context.inputs, context.target_sets, rules
        )
        report = RuleReport(self.name, note=coverage.warning(self.name))
        outputs = []
        for found, target in zip(maps, context.target_sets, strict=True):
            values = {
                "relevance_sum": found.flatten(1).sum(dim=1),
                "logit": target.score(logits),
            }
            outputs.append(MethodOutput(found, report, values))
        return outputs

    def manifest_keys(
        self, explanation: Explanation, options: Settings
    ) -> list[dict[str, Any]]:
        """Each sample's relevance sum and the target's logit it started from."""
        sums = explanation.values["relevance_sum"].float().cpu().tolist()
        logits = explanation.values["logit"].float().cpu().tolist()
        return [
            {"relevance_sum": round(total, 6), "logit": round(logit, 6)}
            for total, logit in zip(sums, logits, strict=True)
        ]


def no_attention_rules(method: str, model: str) -> str:
    """Why an LRP composite refuses a transformer, and what explains one instead."""
    return (
        f"{method} cannot explain {model}, a transformer: LRP here has rules for convolutions, "
        "linear layers and pooling, and none yet for attention, layer norm or GELU (Chefer et "
        "al.'s or AttnLRP's), so its relevance would not be conserved. Use gradient_rollout "
        "(gradient-weighted attention, Chefer 2021), rollout, or gradcam at a block's norm"
    )
