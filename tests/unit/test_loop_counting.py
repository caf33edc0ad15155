"""Counting tasks, annotations and labels from Label Studio's task list."""

from __future__ import annotations

from typing import Any

from labelloop.api.labelconfig import parse_label_config
from labelloop.labelstudio.models import Task
from labelloop.loop.counting import tally
from labelloop.loop.importing import KEY_FIELD

SINGLE = parse_label_config(
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>'
    "</Choices></View>"
)
NER = parse_label_config(
    '<View><Text name="text" value="$text"/><Labels name="ents" toName="text">'
    '<Label value="PER"/><Label value="ORG"/></Labels></View>'
)


def choice(annotation_id: int, *labels: str, cancelled: bool = False) -> dict[str, Any]:
    result = [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": list(labels)},
        }
    ]
    return {"id": annotation_id, "result": [] if cancelled else result, "was_cancelled": cancelled}


def task(task_id: int, *annotations: dict[str, Any], key: str | None = None) -> Task:
    meta = {KEY_FIELD: key} if key else {}
    return Task.from_json(
        {"id": task_id, "data": {"text": "t"}, "meta": meta, "annotations": list(annotations)}
    )


def test_counts_labels_and_new_annotations_after_the_cutoff() -> None:
    tasks = [
        task(1, choice(1, "Positive"), choice(4, "Neutral"), key="k1"),
        task(2, choice(2, "Positive"), key="k2"),
        task(3, choice(3, cancelled=True)),  # skipped: no annotation for training
        task(4),
    ]
    counted = tally(tasks, SINGLE, cutoff=2)
    assert (counted.tasks, counted.annotated_tasks, counted.annotations) == (4, 2, 3)
    assert counted.since_last_training == 1  # only annotation 4 is above the cut-off
    assert counted.label_distribution == {"Positive": 2, "Negative": 0, "Neutral": 1}
    assert counted.last_annotation_id == 4
    assert counted.keys == {"k1", "k2"}


def test_an_empty_project() -> None:
    counted = tally([], SINGLE, cutoff=0)
    assert (counted.tasks, counted.annotations, counted.last_annotation_id) == (0, 0, 0)
    assert counted.label_distribution == {"Positive": 0, "Negative": 0, "Neutral": 0}


def test_spans_count_once_per_label() -> None:
    regions = [
        {
            "from_name": "ents",
            "to_name": "text",
            "type": "labels",
            "value": {"start": 0, "end": 3, "text": "Ann", "labels": ["PER"]},
        },
        {
            "from_name": "ents",
            "to_name": "text",
            "type": "labels",
            "value": {"start": 8, "end": 11, "text": "ACME", "labels": ["ORG"]},
        },
        {
            "from_name": "ents",
            "to_name": "text",
            "type": "labels",
            "value": {"start": 20, "end": 23, "text": "Bob", "labels": ["PER"]},
        },
    ]
    counted = tally([task(1, {"id": 9, "result": regions})], NER, cutoff=0)
    assert counted.label_distribution == {"PER": 2, "ORG": 1}
    assert counted.annotations == 1
