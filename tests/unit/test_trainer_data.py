"""Cleaning, splitting and hashing of training data (training.data), table-driven."""

from __future__ import annotations

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
    read_rows,
    stratified_split,
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
    ("counts", "share", "expected_eval"),
    [
        ({"a": 50, "b": 30, "c": 20}, 0.2, {"a": 10, "b": 6, "c": 4}),
        ({"a": 10, "b": 2}, 0.2, {"a": 2, "b": 1}),
        ({"a": 9, "b": 1}, 0.5, {"a": 4}),
    ],
)
def test_split_is_stratified(
    counts: dict[str, int], share: float, expected_eval: dict[str, int]
) -> None:
    examples = _examples(counts)
    train, held = stratified_split(examples, share, seed=7)
    assert sorted(train + held) == list(range(len(examples)))
    assert Counter(examples[i].target for i in held) == expected_eval


def test_split_depends_only_on_the_seed() -> None:
    examples = _examples({"a": 40, "b": 40})
    assert stratified_split(examples, 0.25, 1) == stratified_split(examples, 0.25, 1)
    assert stratified_split(examples, 0.25, 1) != stratified_split(examples, 0.25, 2)


def test_split_needs_enough_rows() -> None:
    with pytest.raises(BadInputError, match="too few"):
        stratified_split(_examples({"a": 1, "b": 1}), 0.2, 0)


def test_hash_is_stable_and_order_sensitive() -> None:
    a, b = Example("x", "pos"), Example("y", ("p", "q"))
    assert content_hash([a, b]) == content_hash([Example("x", "pos"), Example("y", ("p", "q"))])
    assert content_hash([a, b]) != content_hash([b, a])
    assert content_hash([a]).startswith("sha256:")
