"""Metric definitions (training.scores), table-driven against hand-computed values."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training import scores


def test_single_label_against_hand_computed_values() -> None:
    # gold a a a b b c ; pred a a b b c c
    result = scores.single_label([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert result["accuracy"] == pytest.approx(4 / 6)
    per = result["per_class"]
    assert (per["a"]["precision"], per["a"]["recall"]) == (1.0, pytest.approx(2 / 3))
    assert (per["b"]["precision"], per["b"]["recall"]) == (0.5, 0.5)
    assert (per["c"]["precision"], per["c"]["recall"]) == (0.5, 1.0)
    assert per["a"]["support"] == 3
    f1s = [0.8, 0.5, 2 / 3]
    assert result["macro_f1"] == pytest.approx(sum(f1s) / 3)
    assert result["confusion_matrix"]["matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_a_class_never_predicted_scores_zero_not_nan() -> None:
    result = scores.single_label([0, 1], [0, 0], ["a", "b"])
    assert result["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_multi_label() -> None:
    gold = [(True, False), (True, True), (False, False)]
    pred = [(True, False), (True, False), (False, True)]
    result = scores.multi_label(gold, pred, ["x", "y"])
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert result["confusion_matrix"]["y"] == {"tp": 0, "fp": 1, "fn": 1, "tn": 1}
    assert result["per_class"]["x"]["f1"] == 1.0
    assert result["macro_f1"] == pytest.approx(0.5)
    assert result["micro_f1"] == pytest.approx(2 * 0.667 * 0.667 / (2 * 0.667), abs=1e-3)


ENTITY_CASES: list[tuple[list[str], set[tuple[str, int, int]]]] = [
    (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
    (["I-PER", "I-PER"], {("PER", 0, 2)}),  # an I- without a B- opens an entity
    (["B-PER", "B-PER"], {("PER", 0, 1), ("PER", 1, 2)}),
    (["B-PER", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 2)}),  # a type change ends it
    (["O", "O"], set()),
    (["B-NAME-X", "I-NAME-X"], {("NAME-X", 0, 2)}),
]


@pytest.mark.parametrize(("tags", "expected"), ENTITY_CASES)
def test_entities(tags: list[str], expected: set[tuple[str, int, int]]) -> None:
    assert scores.entities(tags) == expected


def test_ner_counts_an_entity_only_when_type_and_boundaries_match() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-LOC", "O"]]
    result = scores.ner(gold, pred, ["LOC", "PER"])
    assert result["per_class"]["LOC"]["f1"] == 1.0
    assert result["per_class"]["PER"]["f1"] == 0.0
    assert result["micro_f1"] == pytest.approx(2 / 3)
    assert result["macro_f1"] == pytest.approx(0.5)
    assert result["accuracy"] == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("name", "canonical", "higher"),
    [("f1", "macro_f1", True), ("precision", "macro_precision", True),
     ("accuracy", "accuracy", True), ("eval_loss", "eval_loss", False)],
)  # fmt: skip
def test_names(name: str, canonical: str, higher: bool) -> None:
    assert scores.canonical(name) == canonical
    assert scores.higher_is_better(name) is higher


def test_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "domain_metrics.py").write_text(
        textwrap.dedent(
            """
            def cost(gold, pred, labels):
                return sum(g != p for g, p in zip(gold, pred)) * 10.0

            def pair(gold, pred, labels):
                return {"n_gold": len(gold), "n_labels": len(labels)}
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    values = scores.run_plugins(
        ["domain_metrics:cost", "domain_metrics:pair"], ["a", "b"], ["a", "a"], ["a", "b"]
    )
    assert values == {"cost": 10.0, "n_gold": 2.0, "n_labels": 2.0}


@pytest.mark.parametrize(
    ("path", "phrase"),
    [("nocolon", "module:function"), ("no_such_module_xyz:f", "cannot load"),
     ("math:no_such_function", "cannot load"), ("math:pi", "not a function")],
)  # fmt: skip
def test_bad_plugins(path: str, phrase: str) -> None:
    with pytest.raises(BadInputError, match=phrase):
        scores.load_plugin(path)


def test_requested_splits_names_and_rejects_unknown() -> None:
    assert scores.requested(["f1", "accuracy", "math:fsum"]) == (
        ["macro_f1", "accuracy"],
        ["math:fsum"],
    )
    with pytest.raises(BadInputError, match="not a metric"):
        scores.requested(["bleu"])


def test_scalars_keep_numbers_only() -> None:
    data: dict[str, Any] = {"accuracy": 1, "per_class": {}, "flag": True, "macro_f1": 0.5}
    assert scores.scalars(data) == {"accuracy": 1.0, "macro_f1": 0.5}
