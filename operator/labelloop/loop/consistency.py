"""Annotations that contradict a confident prelabel: worth a reviewer's second look.

A prelabel is confident when its score is at least `spec.quality.consistency.minScore`. When
an annotator's answer differs from a confident prelabel of the same task, one of the two is
wrong: either the model learnt something wrong or the annotator slipped. Neither is assumed;
the pair is listed for review. Only the newest prediction of a task is used, since it comes
from the model version the loop trusts now.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..api.labelconfig import LabelSchema
from ..labelstudio.models import Annotation, Prediction, Task
from . import routing
from .counting import counted, labels_of_result

# Status and Data Manager views stay readable; the count says how many there are in all.
MAX_LISTED = 100


@dataclass(frozen=True)
class Disagreement:
    task_id: int
    annotation_id: int
    annotator: str
    labels: tuple[str, ...]
    prelabel: tuple[str, ...]
    score: float


def newest(predictions: Iterable[Prediction]) -> Prediction | None:
    return max(predictions, key=lambda p: p.id, default=None)


@dataclass(frozen=True)
class Review:
    """A counted annotation and the prelabel its task showed (the newest prediction)."""

    task_id: int
    annotation: Annotation
    prediction: Prediction
    given: frozenset[str]
    predicted: frozenset[str]

    @property
    def accepted(self) -> bool:
        """The annotator kept the prelabel's labels unchanged."""
        return self.given == self.predicted


def reviews(tasks: Iterable[Task], schema: LabelSchema) -> Iterator[Review]:
    """Every counted annotation of a prelabelled task, beside that prelabel."""
    for task in tasks:
        prediction = newest(task.predictions)
        if prediction is None:
            continue
        predicted = frozenset(labels_of_result(schema, prediction.result))
        for annotation in task.annotations:
            if counted(annotation):
                given = frozenset(labels_of_result(schema, annotation.result))
                yield Review(task.id, annotation, prediction, given, predicted)


def disagreements(
    tasks: Iterable[Task], schema: LabelSchema, min_score: float
) -> list[Disagreement]:
    """Every counted annotation whose labels differ from its task's confident prelabel."""
    return [
        Disagreement(
            task_id=r.task_id,
            annotation_id=r.annotation.id,
            annotator=str(r.annotation.completed_by or ""),
            labels=tuple(sorted(r.given)),
            prelabel=tuple(sorted(r.predicted)),
            score=r.prediction.score,
        )
        for r in reviews(tasks, schema)
        if r.prediction.score is not None and r.prediction.score >= min_score and not r.accepted
    ]


def review_filter(found: Iterable[Disagreement]) -> dict[str, object]:
    """Data Manager filters selecting the tasks of the first `MAX_LISTED` disagreements."""
    return routing.tasks_filter(sorted({d.task_id for d in found})[:MAX_LISTED])
