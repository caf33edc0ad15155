"""Routing tasks to annotator tiers on the open-source edition: one Data Manager view per tier.

Label Studio's open-source edition cannot assign tasks to people (an Enterprise feature), so
labelloop publishes each annotator's tier in status and keeps a view per tier that shows the
unlabelled tasks of matching difficulty; a team lead points each annotator at their tier's tab.
Difficulty is the prelabel's uncertainty: a low score is a hard task for experts, a high score
an easy one for basic annotators. Tasks without a prediction have no known difficulty and are
in no tier's view. Label Studio scores a task by its predictions of the project's current model
version (the connected ML backend's), so older versions' predictions do not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Prelabel scores below this are hard tasks; from EASY_FROM on they are easy.
HARD_BELOW = 0.6
EASY_FROM = 0.85
VIEW_PREFIX = "labelloop: "
REVIEW_VIEW = f"{VIEW_PREFIX}prelabel disagreements"
RELABEL_VIEW = f"{VIEW_PREFIX}relabel suspects"


@dataclass(frozen=True)
class ViewSpec:
    title: str
    filters: dict[str, Any]


def _score(operator: str, value: Any) -> dict[str, Any]:
    return {
        "filter": "filter:tasks:predictions_score",
        "operator": operator,
        "type": "Number",
        "value": value,
    }


_UNLABELLED = {
    "filter": "filter:tasks:total_annotations",
    "operator": "equal",
    "type": "Number",
    "value": 0,
}


def tier_views() -> list[ViewSpec]:
    """The three tier views: experts get the hardest tasks, basic annotators the easiest."""
    bands = {
        "expert": _score("less", HARD_BELOW),
        "standard": _score("in", {"min": HARD_BELOW, "max": EASY_FROM}),
        "basic": _score("greater_or_equal", EASY_FROM),
    }
    return [
        ViewSpec(f"{VIEW_PREFIX}{tier} tasks", {"conjunction": "and", "items": [_UNLABELLED, band]})
        for tier, band in bands.items()
    ]


def tasks_filter(task_ids: Sequence[int]) -> dict[str, Any]:
    """Data Manager filters selecting exactly `task_ids`. With none, the filter selects
    nothing (an id no task has), so the view stays and empties."""
    return {
        "conjunction": "or",
        "items": [
            {"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": i}
            for i in task_ids or [0]
        ],
    }
