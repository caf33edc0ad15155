"""The prelabel chain with a fake scorer: task reading, result JSON, scores; basic auth."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import pytest

from labelloop.api.labelconfig import LabelSchema, TaskType, parse_label_config
from labelloop_trainer.serving.app import BasicAuth, field_path
from labelloop_trainer.serving.chain import (
    ClassScores,
    Scored,
    Scores,
    SpanScores,
    TaskError,
    TaskInput,
    TextInput,
    build_chain,
    task_text,
    to_prediction,
)

CHOICES = (
    '<View><Text name="t" value="$review"/><Choices name="c" toName="t" choice="{mode}">'
    '<Choice value="pos"/><Choice value="neg"/><Choice value="neu"/></Choices></View>'
)
SINGLE = parse_label_config(CHOICES.format(mode="single"))
MULTI = parse_label_config(CHOICES.format(mode="multiple"))
NER = parse_label_config(
    '<View><Text name="t" value="$text"/><Labels name="l" toName="t">'
    '<Label value="CITY"/></Labels></View>'
)


class Fake:
    """Scores every text alike; counts its calls (one per batch)."""

    model_version = "fake-v1"
    task_type = TaskType.SINGLE_LABEL

    def __init__(self) -> None:
        self.calls: list[int] = []

    def check(self, schema: LabelSchema) -> None:
        """Serves every config."""

    def score(self, items: Sequence[TextInput]) -> list[Scores]:
        self.calls.append(len(items))
        return [ClassScores({"pos": 0.7, "neg": 0.2, "neu": 0.1}) for _ in items]


def scored(schema: LabelSchema, scores: Scores, text: str = "x") -> Scored:
    return Scored(TextInput(text, schema), scores)


def test_single_label_takes_the_top_probability() -> None:
    prediction = to_prediction(scored(SINGLE, ClassScores({"pos": 0.2, "neg": 0.7})), "v")
    assert prediction == {
        "result": [
            {
                "from_name": "c",
                "to_name": "t",
                "type": "choices",
                "value": {"choices": ["neg"]},
                "score": 0.7,
            }
        ],
        "score": 0.7,
        "model_version": "v",
        "probabilities": {"pos": 0.2, "neg": 0.7},
    }


def test_labels_the_config_lacks_are_never_predicted() -> None:
    scores = ClassScores({"pos": 0.1, "neg": 0.2, "mixed": 0.7})
    prediction = to_prediction(scored(SINGLE, scores), "v")
    assert prediction["result"][0]["value"] == {"choices": ["neg"]}
    assert prediction["probabilities"] == {"pos": 0.1, "neg": 0.2}


def test_multi_label_takes_labels_above_half_and_scores_the_certainty() -> None:
    prediction = to_prediction(
        scored(MULTI, ClassScores({"pos": 0.9, "neg": 0.6, "neu": 0.1})), "v"
    )
    assert prediction["result"][0]["value"] == {"choices": ["pos", "neg"]}
    assert prediction["score"] == pytest.approx((0.9 + 0.6 + 0.9) / 3)
    nothing = to_prediction(scored(MULTI, ClassScores({"pos": 0.1, "neg": 0.2, "neu": 0.3})), "v")
    assert nothing["result"] == []


def test_ner_spans_carry_their_text() -> None:
    text = "we went to oslo and rome"
    spans = SpanScores(((11, 15, "CITY"), (20, 24, "CITY"), (0, 2, "NAME")), 0.8)
    prediction = to_prediction(scored(NER, spans, text), "v")
    assert [r["value"] for r in prediction["result"]] == [
        {"start": 11, "end": 15, "text": "oslo", "labels": ["CITY"]},
        {"start": 20, "end": 24, "text": "rome", "labels": ["CITY"]},
    ]
    assert prediction["score"] == 0.8


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ("text", "task"),
        ({"id": 1}, "task.data"),
        ({"data": []}, "task.data"),
        ({"data": {"text": "no review"}}, "task.data.review"),
        ({"data": {"review": ["a"]}}, "task.data.review"),
    ],
)
def test_a_task_without_its_text_names_the_field(task: Any, field: str) -> None:
    with pytest.raises(TaskError) as raised:
        task_text(task, SINGLE)
    assert raised.value.field == field


def test_the_chain_batches_in_one_model_call() -> None:
    fake = Fake()
    chain = build_chain(fake)
    inputs = [TaskInput({"id": i, "data": {"review": f"r{i}"}}, SINGLE) for i in range(5)]
    outputs = chain.batch(inputs)
    assert fake.calls == [5]
    assert [o["result"][0]["value"] for o in outputs] == [{"choices": ["pos"]}] * 5
    assert chain.invoke(inputs[0])["model_version"] == "fake-v1"
    assert fake.calls == [5, 1]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (basic("ls", "p:w"), True),
        (basic("ls", "p:x"), False),
        (basic("LS", "p:w"), False),
        (basic("ls", ""), False),
        ("Bearer abc", False),
        ("Basic not-base64!", False),
        (None, False),
    ],
)
def test_basic_auth(header: str | None, allowed: bool) -> None:
    auth = BasicAuth("ls", "p:w")
    assert auth.allows(header) is allowed
    assert "p:w" not in repr(auth)


@pytest.mark.parametrize(
    ("location", "path"),
    [
        (("tasks", 0, "data", "text"), "tasks[0].data.text"),
        (("label_config",), "label_config"),
        # Found by the fuzz tests: an empty key made a 400 that named no field.
        (("",), '[""]'),
        (("tasks", 2, "a b"), 'tasks[2]["a b"]'),
        (("params", 'q"'), 'params["q\\""]'),
    ],
)
def test_a_refusal_names_every_field_even_odd_keys(
    location: tuple[int | str, ...], path: str
) -> None:
    assert field_path(location) == path
