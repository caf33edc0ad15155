"""Choosing one answer per task from a Label Studio export (training.export), tables."""

from __future__ import annotations

import re
from typing import Any

import pytest

from labelloop.api.labelconfig import Span, build_result, parse_label_config
from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training import jobfile
from labelloop_trainer.training.export import Answer, Source, choose, resolve
from labelloop_trainer.training.label_studio import ExportedTask

SINGLE = parse_label_config(
    '<View><Text name="t" value="$review"/><Choices name="c" toName="t">'
    '<Choice value="pos"/><Choice value="neg"/></Choices></View>'
)
MULTI = parse_label_config(
    '<View><Text name="t" value="$text"/><Choices name="c" toName="t" choice="multiple">'
    '<Choice value="food"/><Choice value="staff"/><Choice value="price"/></Choices></View>'
)
NER = parse_label_config(
    '<View><Text name="t" value="$text"/><Labels name="l" toName="t">'
    '<Label value="CITY"/><Label value="NAME"/></Labels></View>'
)

CHOOSE_CASES: list[tuple[str, list[tuple[int, Answer]], Answer, bool]] = [
    ("one vote", [(5, "pos")], "pos", False),
    ("the majority wins over a newer minority", [(1, "neg"), (2, "neg"), (9, "pos")], "neg", False),
    ("a tie goes to the newest annotation", [(1, "pos"), (7, "neg")], "neg", True),
    ("a tie ignores the order given", [(7, "neg"), (1, "pos")], "neg", True),
    (
        "label sets are compared whole",
        [(1, ("food", "staff")), (2, ("food",)), (3, ("food", "staff"))],
        ("food", "staff"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("votes", "chosen", "tie"), [c[1:] for c in CHOOSE_CASES], ids=[c[0] for c in CHOOSE_CASES]
)
def test_choose(votes: list[tuple[int, Answer]], chosen: Answer, tie: bool) -> None:
    assert choose(votes) == (chosen, tie)


def annotation(
    id_: int, result: list[dict[str, Any]], *, cancelled: bool = False, truth: bool = False
) -> dict[str, Any]:
    return {"id": id_, "result": result, "was_cancelled": cancelled, "ground_truth": truth}


def task(id_: int, data: dict[str, Any], *annotations: dict[str, Any]) -> ExportedTask:
    return ExportedTask.from_json({"id": id_, "data": data, "annotations": list(annotations)})


POS, NEG = build_result(SINGLE, ["pos"]), build_result(SINGLE, ["neg"])


def test_single_label_cutoff_cancelled_empty_and_ground_truth() -> None:
    tasks = [
        task(1, {"review": "fine"}, annotation(10, POS), annotation(30, NEG), annotation(31, NEG)),
        task(2, {"review": "bad"}, annotation(11, NEG), annotation(12, POS, cancelled=True)),
        task(3, {"review": "meh"}, annotation(13, []), annotation(14, POS, cancelled=True)),
        task(4, {"review": "late"}, annotation(40, POS)),
        task(5, {"other": "no text"}, annotation(15, POS)),
        task(6, {"review": "judged"}, annotation(16, NEG), annotation(17, NEG),
             annotation(18, POS, truth=True)),
        task(7, {"review": "unlisted"}, annotation(19, [
            {"from_name": "c", "to_name": "t", "type": "choices", "value": {"choices": ["meh"]}}
        ])),
    ]  # fmt: skip
    out = resolve(SINGLE, tasks, cutoff=20)
    assert [(r["taskId"], r["review"], r["label"]) for r in out.rows] == [
        (1, "fine", "pos"),  # 30 and 31 come after the cut-off
        (2, "bad", "neg"),
        (6, "judged", "pos"),  # the reviewer's ground truth beats the majority
        (7, "unlisted", "meh"),  # kept as written: training drops it as an unknown label
    ]
    assert out.rows[0]["annotationIds"] == [10]
    assert dict(out.skipped) == {"after_cutoff": 3, "cancelled": 2, "no_answer": 1}
    assert dict(out.dropped_tasks) == {"no_annotation": 2, "missing_text": 1}
    assert (out.ground_truth, out.ties, out.last_included) == (1, 0, 19)


def test_without_a_cutoff_every_annotation_counts() -> None:
    tasks = [task(1, {"review": "fine"}, annotation(10, POS), annotation(30, NEG))]
    out = resolve(SINGLE, tasks, cutoff=None)
    assert [r["label"] for r in out.rows] == ["neg"]  # a tie: the newest wins
    assert (out.ties, out.last_included) == (1, 30)


def test_multi_label_sets_and_the_empty_set() -> None:
    both = build_result(MULTI, ["staff", "food"])
    tasks = [
        task(1, {"text": "a"}, annotation(1, both), annotation(2, build_result(MULTI, ["food"])),
             annotation(3, build_result(MULTI, ["food", "staff"]))),
        task(2, {"text": "b"}, annotation(4, [])),
    ]  # fmt: skip
    out = resolve(MULTI, tasks, cutoff=None)
    assert [r["labels"] for r in out.rows] == [["food", "staff"], []]


def test_ner_spans_are_one_answer_per_annotation() -> None:
    text = "anna visited rome"
    anna, rome = Span(0, 4, "anna", "NAME"), Span(13, 17, "rome", "CITY")
    tasks = [
        task(1, {"text": text},
             annotation(1, build_result(NER, [rome, anna])),
             annotation(2, build_result(NER, [anna])),
             annotation(3, build_result(NER, [anna, rome]))),
    ]  # fmt: skip
    out = resolve(NER, tasks, cutoff=None)
    assert out.rows[0]["spans"] == [
        {"start": 0, "end": 4, "label": "NAME"},
        {"start": 13, "end": 17, "label": "CITY"},
    ]


def job_with(label_studio: Any) -> dict[str, Any]:
    return {
        "name": "reviews-r3", "namespace": "ml", "uid": "1234", "modelVersion": "reviews-r3-1a",
        "spec": {"baseModel": {"uri": "pvc://models/base"}, "output": {"uri": "pvc://models/r"},
                 "annotationProjectRef": {"name": "reviews"}},
        "dataset": {"labelStudio": label_studio},
        "outputDir": "/mnt/models/r", "baseModelDir": "/mnt/models/base",
    }  # fmt: skip


SOURCE_ERRORS: list[tuple[Any, str]] = [
    ("http://ls", "dataset.labelStudio: Input should be a valid dictionary"),
    ({"projectId": 7}, "dataset.labelStudio.url: Field required"),
    ({"url": "http://ls", "projectId": "seven"}, "dataset.labelStudio.projectId: Input should be"),
    (
        {"url": "http://ls", "projectId": 7, "lastAnnotationId": 1.5},
        "dataset.labelStudio.lastAnnotationId: Input should be a valid integer",
    ),
    ({"url": "http://ls", "projectId": 7, "token": "x"}, "dataset.labelStudio.token: Extra"),
]


@pytest.mark.parametrize(("raw", "message"), SOURCE_ERRORS)
def test_a_bad_label_studio_dataset_names_the_field(raw: Any, message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)):
        jobfile.parse(job_with(raw))


def test_the_label_studio_dataset_of_the_operators_job_file() -> None:
    raw = {"url": "http://ls.ml.svc:8080", "projectId": 7, "lastAnnotationId": None}
    source = jobfile.parse(job_with(raw)).dataset.label_studio
    assert source is not None
    assert Source.from_api(source) == Source("http://ls.ml.svc:8080", 7, None)
    assert Source("http://ls", 7, 12).to_json() == {
        "url": "http://ls",
        "projectId": 7,
        "lastAnnotationId": 12,
    }
