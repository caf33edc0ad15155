"""Relabel suspects: tasks a confident prelabel contradicts, or whose annotators split."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.models import Task
from labelloop.loop.relabel import MAX_LISTED, RelabelQueue, queue_filter, relabel_queue

SCHEMA = parse_label_config(
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>'
    "</Choices></View>"
)


def task(task_id: int, answers: list[str], prelabel: tuple[str, float] | None = None) -> Task:
    """A task annotated by users 1, 2, … in order, with at most one prediction."""
    raw: dict[str, Any] = {
        "id": task_id,
        "data": {"text": "t"},
        "annotations": [
            {"id": task_id * 10 + n, "result": build_result(SCHEMA, [label]), "completed_by": n}
            for n, label in enumerate(answers, start=1)
        ],
        "predictions": []
        if prelabel is None
        else [
            {"id": task_id, "result": build_result(SCHEMA, [prelabel[0]]), "score": prelabel[1],
             "model_version": "v2"}
        ],
    }  # fmt: skip
    return Task.from_json(raw)


CASES: list[tuple[str, list[Task], RelabelQueue]] = [
    ("nothing suspect", [task(1, ["Positive"], ("Positive", 0.99)),
                         task(2, ["Negative", "Negative"])], RelabelQueue((), 0, 0)),
    ("a confident prelabel contradicts the answer", [task(1, ["Positive"], ("Negative", 0.95))],
     RelabelQueue((1,), 1, 0)),
    ("an unsure prelabel does not", [task(1, ["Positive"], ("Negative", 0.6))],
     RelabelQueue((), 0, 0)),
    ("two annotators split", [task(3, ["Positive", "Negative"])], RelabelQueue((3,), 0, 1)),
    ("a majority is no split", [task(3, ["Positive", "Negative", "Positive"])],
     RelabelQueue((), 0, 0)),
    ("three ways is a split", [task(3, ["Positive", "Negative", "Neutral"])],
     RelabelQueue((3,), 0, 1)),
    ("both signals: one task, counted by each", [task(4, ["Positive", "Negative"],
                                                      ("Neutral", 0.97))],
     RelabelQueue((4,), 1, 1)),
    ("in task order", [task(9, ["Positive", "Neutral"]), task(2, ["Neutral"], ("Positive", 0.9))],
     RelabelQueue((2, 9), 1, 1)),
]  # fmt: skip


@pytest.mark.parametrize(("tasks", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_relabel_queue(tasks: list[Task], expected: RelabelQueue) -> None:
    assert relabel_queue(tasks, SCHEMA, min_score=0.9) == expected


def test_the_view_lists_the_first_suspects_and_empties_without_any() -> None:
    many = RelabelQueue(tuple(range(1, 300)), 299, 0)
    values = [item["value"] for item in queue_filter(many)["items"]]
    assert values == list(range(1, MAX_LISTED + 1))
    none = queue_filter(RelabelQueue((), 0, 0))
    assert [item["value"] for item in none["items"]] == [0]
