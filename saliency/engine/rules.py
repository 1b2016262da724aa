"""The three backprop rules at a ReLU-family unit.

With forward input ``x`` and the gradient ``g`` arriving at the unit's output:

* ``gradient``  -- ``g * [x in pass-through]`` (the true gradient, unchanged)
* ``deconvnet`` -- ``max(g, 0)`` (the forward mask is ignored)
* ``guided``    -- ``max(g, 0) * [x in pass-through]`` (both masks)

The pass-through region is ``x > 0`` for ReLU and ``0 < x < k`` for ReLU6 / hardtanh(0, k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Rule:
    """A backward rule for ReLU-family units.

    ``forward_mask``: keep the unit's own mask (zero where the forward input was outside the
    pass-through region). ``positive_only``: keep only positive gradient.
    """

    name: str
    forward_mask: bool
    positive_only: bool
    summary: str

    @property
    def changes_gradient(self) -> bool:
        """Whether this rule differs from the true gradient at all."""
        return not (self.forward_mask and not self.positive_only)

    def apply(self, grad_input: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
        """The rule's gradient at the unit's input.

        ``grad_input`` is the true gradient at the unit's input (``g`` times the forward mask),
        freshly made by the unit's backward and owned by it; ``grad_output`` the gradient ``g``
        that arrived at its output. A clamping rule writes its result into ``grad_input``.
        """
        if not self.positive_only:
            return grad_input if self.forward_mask else grad_output
        # The unit's backward made grad_input just now and nobody else holds it, so the result
        # goes into its buffer (no allocation). grad_output may be shared with other branches
        # (autograd passes sums through), so it is never written.
        source = grad_input if self.forward_mask else grad_output
        return torch.clamp(source, min=0, out=grad_input)


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("gradient", True, False, "true gradient (Simonyan et al. 2013)"),
        Rule(
            "deconvnet",
            False,
            True,
            "positive gradient, forward mask ignored (Zeiler & Fergus 2014)",
        ),
        Rule("guided", True, True, "positive gradient and forward mask (Springenberg et al. 2014)"),
    )
}


def get_rule(rule: str | Rule) -> Rule:
    """Look a rule up by name, case-insensitively; a :class:`Rule` is returned as it is."""
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, str) and rule.strip().lower() in RULES:
        return RULES[rule.strip().lower()]
    raise ValueError(f"unknown rule {rule!r}; valid rules: {', '.join(RULES)}")
