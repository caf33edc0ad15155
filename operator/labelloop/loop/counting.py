"""Counting a project's tasks and annotations from what Label Studio holds right now.

Counts are recomputed from the full task list on every reconcile, never incremented per
webhook: Label Studio sends each webhook once and keeps no record, so only re-reading is
exact after a lost event, a restart or an outage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.labelconfig import LabelSchema, Span, read_result
from ..labelstudio.models import Annotation, Task
from .importing import KEY_FIELD


@dataclass(frozen=True)
class Tally:
    tasks: int
    annotated_tasks: int
    annotations: int
    since_last_training: int
    label_distribution: dict[str, int]
    last_annotation_id: int
    """Newest counted annotation (0 when none): the cut-off a round that starts now gets."""
    keys: frozenset[str]
    """Import keys of the tasks present (see `importing`)."""


def labels_of_result(schema: LabelSchema, result: Sequence[dict[str, Any]]) -> list[str]:
    """The labels an annotation's or prediction's result gives (a span's label for NER)."""
    values = read_result(schema, result)
    return [v.label if isinstance(v, Span) else v for v in values]


def counted(annotation: Annotation) -> bool:
    """Skipped tasks leave an annotation without a label; it is no annotation for training."""
    return not annotation.was_cancelled


def tally(tasks: Iterable[Task], schema: LabelSchema, cutoff: int) -> Tally:
    """Count `tasks`; annotations with an id above `cutoff` are new since the last round."""
    n_tasks = annotated = annotations = since = last_id = 0
    distribution: Counter[str] = Counter({label: 0 for label in schema.labels})
    keys: set[str] = set()
    for task in tasks:
        n_tasks += 1
        key = task.meta.get(KEY_FIELD)
        if isinstance(key, str):
            keys.add(key)
        kept = [a for a in task.annotations if counted(a)]
        if kept:
            annotated += 1
        for annotation in kept:
            annotations += 1
            since += annotation.id > cutoff
            last_id = max(last_id, annotation.id)
            distribution.update(labels_of_result(schema, annotation.result))
    return Tally(
        tasks=n_tasks,
        annotated_tasks=annotated,
        annotations=annotations,
        since_last_training=since,
        label_distribution=dict(distribution),
        last_annotation_id=last_id,
        keys=frozenset(keys),
    )
