"""Prelabel accuracy per model version: the share of prelabels annotators kept unchanged."""

from __future__ import annotations

import pytest

from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.models import Annotation, Prediction, Task
from labelloop.loop.acceptance import MIN_REVIEWED, Acceptance, by_version, published_accuracies

SCHEMA = parse_label_config(
    '<View><Text name="text" value="$text"/><Choices name="s" toName="text">'
    '<Choice value="A"/><Choice value="B"/></Choices></View>'
)


def task(
    task_id: int,
    predictions: list[tuple[str, str]],
    answers: list[str],
    cancelled: bool = False,
) -> Task:
    """A task with predictions (version, label), oldest first, and annotations (labels)."""
    return Task(
        id=task_id,
        data={"text": "t"},
        meta={},
        created_at=None,
        annotations=tuple(
            Annotation(
                id=100 * task_id + i,
                task_id=task_id,
                result=build_result(SCHEMA, [label]) if label else [],
                completed_by=1,
                created_at=None,
                ground_truth=False,
                was_cancelled=cancelled,
            )
            for i, label in enumerate(answers)
        ),
        predictions=tuple(
            Prediction(
                id=100 * task_id + i,
                task_id=task_id,
                result=build_result(SCHEMA, [label]),
                score=0.9,
                model_version=version,
                created_at=None,
            )
            for i, (version, label) in enumerate(predictions)
        ),
    )


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([], {}),
        ([task(1, [], ["A"])], {}),  # no prelabel: nothing reviewed
        ([task(1, [("v1", "A")], [])], {}),  # not annotated yet
        ([task(1, [("v1", "A")], ["A"])], {"v1": Acceptance(1, 1)}),
        ([task(1, [("v1", "A")], ["B"])], {"v1": Acceptance(0, 1)}),
        # Two annotators review the same prelabel.
        ([task(1, [("v1", "A")], ["A", "B"])], {"v1": Acceptance(1, 2)}),
        # The newest prediction is the one the task showed.
        ([task(1, [("v1", "B"), ("v2", "A")], ["A"])], {"v2": Acceptance(1, 1)}),
        # A skipped task reviews nothing.
        ([task(1, [("v1", "A")], [""], cancelled=True)], {}),
        (
            [task(1, [("v1", "A")], ["A"]), task(2, [("v2", "B")], ["A"])],
            {"v1": Acceptance(1, 1), "v2": Acceptance(0, 1)},
        ),
    ],
)
def test_by_version(tasks: list[Task], expected: dict[str, Acceptance]) -> None:
    assert by_version(tasks, SCHEMA) == expected


@pytest.mark.parametrize(
    ("acceptance", "share", "accuracy"),
    [
        (Acceptance(0, 0), None, None),
        (Acceptance(3, 4), 0.75, None),  # too few reviewed to judge a version by
        (Acceptance(MIN_REVIEWED // 2, MIN_REVIEWED), 0.5, 0.5),
    ],
)
def test_accuracy_needs_enough_reviews(
    acceptance: Acceptance, share: float | None, accuracy: float | None
) -> None:
    assert acceptance.share == share
    assert acceptance.accuracy() == accuracy


def project_status(*entries: tuple[str, int, int]) -> dict[str, object]:
    acceptance = [{"modelVersion": v, "accepted": a, "reviewed": r} for v, a, r in entries]
    return {"status": {"prelabels": {"service": "s", "acceptance": acceptance}}}


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        (None, {}),
        ({"status": {}}, {}),
        ({"status": {"prelabels": None}}, {}),
        # too few reviews: unknown, so a handful of early answers cannot roll a version back
        (project_status(("r1", 3, MIN_REVIEWED - 1)), {"r1": None}),
        (
            project_status(("r1", 30, 40), ("r2", 10, MIN_REVIEWED)),
            {"r1": 0.75, "r2": 10 / MIN_REVIEWED},
        ),
    ],
)
def test_published_accuracies_read_the_projects_status(
    project: dict[str, object] | None, expected: dict[str, float | None]
) -> None:
    assert published_accuracies(project) == expected
