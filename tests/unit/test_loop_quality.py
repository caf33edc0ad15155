"""Quality rules on label shares."""

from __future__ import annotations

import pytest

from labelloop.api.annotationproject import QualityRule
from labelloop.loop.quality import Violation, summary, violations


def rule(label: str, max_share: float | None = None, min_share: float | None = None) -> QualityRule:
    return QualityRule(label=label, max_share=max_share, min_share=min_share)


@pytest.mark.parametrize(
    ("distribution", "rules", "expected"),
    [
        ({}, [rule("Neutral", max_share=0.3)], []),
        ({"Neutral": 0, "Positive": 0}, [rule("Neutral", max_share=0.3)], []),
        ({"Neutral": 3, "Positive": 7}, [rule("Neutral", max_share=0.3)], []),  # at the bound
        (
            {"Neutral": 4, "Positive": 6},
            [rule("Neutral", max_share=0.3)],
            [Violation("Neutral", 0.4, "maxShare", 0.3)],
        ),
        (
            {"Negative": 1, "Positive": 9},
            [rule("Negative", min_share=0.2)],
            [Violation("Negative", 0.1, "minShare", 0.2)],
        ),
        # A label nobody used has share 0.
        (
            {"Positive": 5},
            [rule("Negative", min_share=0.1, max_share=0.5)],
            [Violation("Negative", 0.0, "minShare", 0.1)],
        ),
        (
            {"A": 1, "B": 2},
            [rule("A", max_share=0.2), rule("B", min_share=0.9)],
            [Violation("A", 0.3333, "maxShare", 0.2), Violation("B", 0.6667, "minShare", 0.9)],
        ),
    ],
)
def test_violations(
    distribution: dict[str, int], rules: list[QualityRule], expected: list[Violation]
) -> None:
    assert violations(distribution, rules) == expected


def test_summary_names_label_share_and_bound() -> None:
    text = summary([Violation("Neutral", 0.4, "maxShare", 0.3)])
    assert text == "Neutral is 40% of labels, above its maxShare 30%"
