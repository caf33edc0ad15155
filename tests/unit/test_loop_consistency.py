"""Disagreements with confident prelabels, the review filter, and the tier views."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.models import Task
from labelloop.loop.consistency import MAX_LISTED, Disagreement, disagreements, review_filter
from labelloop.loop.routing import EASY_FROM, HARD_BELOW, tier_views

SCHEMA = parse_label_config(
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)


def task(
    task_id: int,
    annotations: list[tuple[int, str, int]],
    predictions: list[tuple[int, str, float | None]],
    cancelled: bool = False,
) -> Task:
    raw: dict[str, Any] = {
        "id": task_id,
        "data": {"text": "t"},
        "annotations": [
            {
                "id": i,
                "result": build_result(SCHEMA, [label]),
                "completed_by": user,
                "was_cancelled": cancelled,
            }
            for i, label, user in annotations
        ],
        "predictions": [
            {"id": i, "result": build_result(SCHEMA, [label]), "score": score, "model_version": "v"}
            for i, label, score in predictions
        ],
    }
    return Task.from_json(raw)


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([task(1, [(10, "Positive", 7)], [])], []),
        ([task(1, [(10, "Positive", 7)], [(1, "Positive", 0.99)])], []),
        ([task(1, [(10, "Positive", 7)], [(1, "Negative", 0.5)])], []),  # not confident
        ([task(1, [(10, "Positive", 7)], [(1, "Negative", None)])], []),  # no score
        (
            [task(1, [(10, "Positive", 7)], [(1, "Negative", 0.9)])],
            [Disagreement(1, 10, "7", ("Positive",), ("Negative",), 0.9)],
        ),
        # Only the newest prediction counts.
        ([task(1, [(10, "Positive", 7)], [(1, "Negative", 0.99), (2, "Positive", 0.95)])], []),
        (
            [task(1, [(10, "Positive", 7)], [(2, "Negative", 0.95), (1, "Positive", 0.99)])],
            [Disagreement(1, 10, "7", ("Positive",), ("Negative",), 0.95)],
        ),
        # A skipped task is no answer.
        ([task(1, [(10, "Positive", 7)], [(1, "Negative", 0.99)], cancelled=True)], []),
    ],
)
def test_disagreements(tasks: list[Task], expected: list[Disagreement]) -> None:
    assert disagreements(tasks, SCHEMA, min_score=0.9) == expected


def ids_of(filters: dict[str, Any]) -> list[int]:
    assert filters["conjunction"] == "or"
    return [item["value"] for item in filters["items"]]


def test_review_filter_selects_the_tasks_once_and_is_bounded() -> None:
    found = [Disagreement(t, t * 10 + k, "u", (), (), 1.0) for t in (3, 1, 2) for k in (1, 2)]
    assert ids_of(review_filter(found)) == [1, 2, 3]
    many = [Disagreement(t, t, "u", (), (), 1.0) for t in range(1, 500)]
    assert len(ids_of(review_filter(many))) == MAX_LISTED
    assert ids_of(review_filter([])) == [0]  # selects nothing, keeps the view


def test_tier_views_split_unlabelled_tasks_by_prelabel_score() -> None:
    views = {v.title: v.filters for v in tier_views()}
    assert list(views) == [
        "labelloop: expert tasks",
        "labelloop: standard tasks",
        "labelloop: basic tasks",
    ]
    bands = {}
    for title, filters in views.items():
        unlabelled, band = filters["items"]
        assert filters["conjunction"] == "and"
        assert unlabelled["filter"] == "filter:tasks:total_annotations" and unlabelled["value"] == 0
        assert band["filter"] == "filter:tasks:predictions_score"
        bands[title] = (band["operator"], band["value"])
    assert bands == {
        "labelloop: expert tasks": ("less", HARD_BELOW),
        "labelloop: standard tasks": ("in", {"min": HARD_BELOW, "max": EASY_FROM}),
        "labelloop: basic tasks": ("greater_or_equal", EASY_FROM),
    }
