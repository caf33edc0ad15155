"""Cleaning, splitting and hashing of training data (training.data), table-driven."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training.data import (
    Example,
    Span,
    clean,
    content_hash,
    held_out_split,
    read_rows,
)

SINGLE = TaskType.SINGLE_LABEL

CLEANING_CASES: list[
    tuple[str, list[Any], TaskType, tuple[str, ...] | None, list[Any], dict[str, int]]
] = [
    (
        "whitespace is normalised and duplicates after it are dropped",
        [
            {"text": "  good \t food ", "label": "pos"},
            {"text": "good food", "label": "neg"},
            {"text": "bad", "label": "neg"},
        ],
        SINGLE,
        None,
        [("good food", "pos"), ("bad", "neg")],
        {"duplicate": 1},
    ),
    (
        "empty texts, missing fields and non-objects are counted by reason",
        [
            {"text": "   ", "label": "pos"},
            {"label": "pos"},
            {"text": "a"},
            {"text": "b", "label": ""},
            "not an object",
            {"text": "c", "label": "pos"},
            {"text": "d", "label": "neg"},
        ],
        SINGLE,
        None,
        [("c", "pos"), ("d", "neg")],
        {"empty_text": 1, "missing_text": 1, "missing_label": 2, "malformed": 1},
    ),
    (
        "labels outside a given label set are dropped as unknown",
        [
            {"text": "a", "label": "positive"},
            {"text": "b", "label": "mixed"},
            {"text": "c", "label": "negative"},
        ],
        SINGLE,
        ("positive", "negative", "neutral"),
        [("a", "positive"), ("c", "negative")],
        {"unknown_label": 1},
    ),
    (
        "integer labels become strings",
        [{"text": "a", "label": 1}, {"text": "b", "label": 0}],
        SINGLE,
        None,
        [("a", "1"), ("b", "0")],
        {},
    ),
    (
        "multi-label: lists, JSON strings and comma lists, kept in label-set order",
        [
            {"text": "a", "label": ["y", "x"]},
            {"text": "b", "label": '["x"]'},
            {"text": "c", "label": "x,y"},
            {"text": "d", "label": []},
            {"text": "e", "label": [1.5]},
        ],
        TaskType.MULTI_LABEL,
        ("x", "y"),
        [("a", ("x", "y")), ("b", ("x",)), ("c", ("x", "y")), ("d", ())],
        {"invalid_label": 1},
    ),
    (
        "NER: spans are checked against the text; overlaps cannot be BIO-tagged",
        [
            {
                "text": "anna in rome",
                "label": [
                    {"start": 8, "end": 12, "label": "CITY"},
                    {"start": 0, "end": 4, "label": "NAME"},
                ],
            },
            {"text": "omar", "label": [{"start": 0, "end": 9, "label": "NAME"}]},
            {
                "text": "yuki",
                "label": [
                    {"start": 0, "end": 4, "label": "NAME"},
                    {"start": 2, "end": 4, "label": "NAME"},
                ],
            },
            {"text": "  keep  spaces ", "label": []},
        ],
        TaskType.NER,
        None,
        [("anna in rome", (Span(0, 4, "NAME"), Span(8, 12, "CITY"))), ("  keep  spaces ", ())],
        {"invalid_spans": 2},
    ),
]


@pytest.mark.parametrize(
    ("rows", "task", "labels", "kept", "dropped"),
    [case[1:] for case in CLEANING_CASES],
    ids=[case[0] for case in CLEANING_CASES],
)
def test_cleaning(
    rows: list[Any],
    task: TaskType,
    labels: tuple[str, ...] | None,
    kept: list[tuple[str, Any]],
    dropped: dict[str, int],
) -> None:
    dataset = clean(rows, "text", "label", task, labels)
    assert [(e.text, e.target) for e in dataset.examples] == kept
    assert dict(dataset.report.dropped) == dropped
    assert dataset.report.total == len(rows)
    assert dataset.report.kept == len(kept)


def test_unknown_labels_are_listed_in_the_report() -> None:
    rows = [{"t": "a", "l": "pos"}, {"t": "b", "l": "mixed"}, {"t": "c", "l": "mixed"},
            {"t": "d", "l": "neg"}]  # fmt: skip
    report = clean(rows, "t", "l", SINGLE, ("pos", "neg")).report.to_json()
    assert report["dropped"] == {"unknown_label": 2}
    assert report["unknownLabels"] == {"mixed": 2}


BAD_DATA = [
    ("wrong text field", [{"sentence": "a", "label": "x"}], "text", None,
     ["'text'", "sentence"]),
    ("wrong label field", [{"text": "a", "gold": "x"}], "text", None, ["'label'", "gold"]),
    ("only unknown labels", [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}],
     "text", ("positive", "negative"), ["'label'", "pos", "positive, negative"]),
    ("one class only", [{"text": "a", "label": "x"}, {"text": "b", "label": "x"}], "text", None,
     ["two different labels"]),
    ("no objects", ["a", "b"], "text", None, ["JSON objects"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "text_field", "labels", "phrases"),
    [case[1:] for case in BAD_DATA],
    ids=[case[0] for case in BAD_DATA],
)
def test_bad_data_names_the_field_and_what_is_allowed(
    rows: list[Any], text_field: str, labels: tuple[str, ...] | None, phrases: list[str]
) -> None:
    with pytest.raises(BadInputError) as raised:
        clean(rows, text_field, "label", SINGLE, labels)
    for phrase in phrases:
        assert phrase in str(raised.value)


READ_CASES = [
    ("rows.json", json.dumps([{"text": "a", "label": "x"}]), 1, 0),
    ("rows.jsonl", '{"text": "a", "label": "x"}\n\n{broken\n{"text": "b", "label": "y"}\n', 2, 1),
    ("rows.csv", 'text,label\na,x\n"b, c",y\n', 2, 0),
    ("rows.data", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', 2, 0),
]


@pytest.mark.parametrize(("name", "content", "rows", "malformed"), READ_CASES)
def test_reading_formats(
    tmp_path: Path, name: str, content: str, rows: int, malformed: int
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    found, bad = read_rows(path)
    assert (len(found), bad) == (rows, malformed)


@pytest.mark.parametrize(
    ("content", "phrase"), [("", "is empty"), ("  \n", "is empty"), ('{"a": 1}', "JSON list")]
)
def test_unreadable_files(tmp_path: Path, content: str, phrase: str) -> None:
    path = tmp_path / "rows.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError, match=phrase):
        read_rows(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="does not exist"):
        read_rows(tmp_path / "nope.jsonl")


def _examples(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label} {i}", label) for label, n in counts.items() for i in range(n)]


@pytest.mark.parametrize(
    ("counts", "share"),
    [
        ({"a": 500, "b": 300, "c": 200}, 0.2),
        ({"a": 400, "b": 400}, 0.5),
        ({"a": 1000}, 0.1),
    ],
)
def test_each_class_is_held_out_near_the_share(counts: dict[str, int], share: float) -> None:
    examples = _examples(counts)
    train, held = held_out_split(examples, share, seed=7)
    assert sorted(train + held) == list(range(len(examples)))
    per_class = Counter(examples[i].target for i in held)
    for label, n in counts.items():
        # A binomial draw: 4 standard deviations either side.
        assert abs(per_class[label] - n * share) <= 4 * (n * share * (1 - share)) ** 0.5


@pytest.mark.parametrize(
    ("counts", "share", "held_per_class"),
    [
        ({"a": 2, "b": 2, "c": 2, "d": 2}, 0.01, {"a": 1, "b": 1, "c": 1, "d": 1}),
        ({"a": 3, "b": 3}, 0.99, {"a": 2, "b": 2}),
        ({"a": 9, "b": 1}, 0.999, {"a": 8}),
    ],
)
def test_a_class_of_two_or_more_keeps_both_sides_and_one_of_one_is_trained(
    counts: dict[str, int], share: float, held_per_class: dict[str, int]
) -> None:
    examples = _examples(counts)
    _, held = held_out_split(examples, share, seed=0)
    assert Counter(examples[i].target for i in held) == held_per_class


def test_an_example_held_out_stays_held_out_as_the_data_grows() -> None:
    """Round after round the loop trains on more annotations; the ones held out before must
    not be trained on now, or the gate would compare versions on what one of them saw."""
    rounds = [_examples({"a": n, "b": n, "c": n}) for n in (20, 70, 200)]
    sides = []
    for examples in rounds:
        train, held = held_out_split(examples, 0.2, seed=3)
        sides.append(({examples[i] for i in train}, {examples[i] for i in held}))
    for (train_before, held_before), (train_now, held_now) in itertools.pairwise(sides):
        assert held_before <= held_now
        assert train_before <= train_now


def test_the_split_depends_on_the_texts_and_seed_not_their_order() -> None:
    examples = _examples({"a": 40, "b": 40})
    train, held = held_out_split(examples, 0.25, 1)
    assert (train, held) == held_out_split(examples, 0.25, 1)
    assert (train, held) != held_out_split(examples, 0.25, 2)
    backwards = examples[::-1]
    _, held_backwards = held_out_split(backwards, 0.25, 1)
    assert {backwards[i] for i in held_backwards} == {examples[i] for i in held}


def test_split_needs_enough_rows() -> None:
    with pytest.raises(BadInputError, match="too few"):
        held_out_split(_examples({"a": 1, "b": 1}), 0.2, 0)


def test_hash_is_stable_and_order_sensitive() -> None:
    a, b = Example("x", "pos"), Example("y", ("p", "q"))
    assert content_hash([a, b]) == content_hash([Example("x", "pos"), Example("y", ("p", "q"))])
    assert content_hash([a, b]) != content_hash([b, a])
    assert content_hash([a]).startswith("sha256:")
