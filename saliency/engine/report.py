"""Where a rule was applied: the result that every pass carries beside its maps, and the one
warning a run prints when a changing rule missed activations or found none."""

from __future__ import annotations

from dataclasses import dataclass, field

from .rules import RULES, get_rule


def _plural(count: int, what: str) -> str:
    return f"{count} {what} unit{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class RuleReport:
    """Where a rule was applied, and which activations kept their plain gradient."""

    rule: str
    units: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    custom: dict[str, int] = field(default_factory=dict)
    # a method's own warning, for a report that is not a ReLU rule's (LRP's layers without one)
    note: str | None = None

    @property
    def applied(self) -> int:
        """Number of units the rule was applied at."""
        return sum(self.units.values())

    def warning(self) -> str | None:
        """One line for the user when a changing rule was incomplete or found nothing; else None."""
        if self.rule not in RULES:
            return self.note
        if get_rule(self.rule).changes_gradient is False:
            return None
        if not self.units:
            head = (
                f"{self.rule}: no ReLU-family unit in the graph, so the map is the plain gradient"
            )
        elif self.kept or self.custom:
            head = f"{self.rule}: rule applied at " + ", ".join(
                _plural(n, kind) for kind, n in sorted(self.units.items())
            )
        else:
            return None
        tails = [
            f"{_plural(n, kind)} kept the plain gradient" for kind, n in sorted(self.kept.items())
        ]
        tails += [
            f"custom autograd function {name} ({n}x) was backpropagated as it defines"
            for name, n in sorted(self.custom.items())
        ]
        return "; ".join([head, *tails])
