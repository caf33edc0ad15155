"""Quality rules on the label distribution: which label shares break their bounds.

A share is a label's count over all label occurrences, so a multi-label annotation counts once
per label it gives. With no labels yet there is nothing to judge, and no rule is broken — a
fresh project must not start out flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ..api.annotationproject import QualityRule


@dataclass(frozen=True)
class Violation:
    label: str
    share: float
    bound: Literal["maxShare", "minShare"]
    limit: float

    def describe(self) -> str:
        word = "above" if self.bound == "maxShare" else "below"
        return (
            f"{self.label} is {self.share:.0%} of labels, {word} its {self.bound} {self.limit:.0%}"
        )


def violations(distribution: Mapping[str, int], rules: Sequence[QualityRule]) -> list[Violation]:
    """The broken bounds, in rule order; shares are rounded to 4 places for a stable status."""
    total = sum(distribution.values())
    if total == 0:
        return []
    found = []
    for rule in rules:
        share = round(distribution.get(rule.label, 0) / total, 4)
        if rule.max_share is not None and share > rule.max_share:
            found.append(Violation(rule.label, share, "maxShare", rule.max_share))
        if rule.min_share is not None and share < rule.min_share:
            found.append(Violation(rule.label, share, "minShare", rule.min_share))
    return found


def summary(found: Sequence[Violation]) -> str:
    """One line for a condition message or an Event."""
    return "; ".join(v.describe() for v in found)
