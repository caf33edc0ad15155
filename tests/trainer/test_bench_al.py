"""`bench_al.py` end to end on the tiny model and a toy set: two rounds of both strategies."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from paths import REPO_ROOT
from trainer.support import toy_sentences, write_jsonl

pytestmark = pytest.mark.trainer


def bench_module() -> ModuleType:
    """The benchmark script, imported from its file (benchmarks/ is not a package)."""
    path = REPO_ROOT / "trainer-image" / "benchmarks" / "bench_al.py"
    spec = importlib.util.spec_from_file_location("bench_al", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_both_strategies_start_alike_and_the_report_has_both_curves(
    tmp_path: Path, tiny_model: Path
) -> None:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(per_class=12))
    output = tmp_path / "al.json"
    report = bench_module().main(
        [
            "--data", str(data), "--text-field", "text", "--label-field", "label",
            "--base-model", str(tiny_model), "--learning-rate", "0.02", "--epochs", "1",
            "--test-size", "9", "--seed-size", "9", "--batch", "6", "--rounds", "2",
            "--output", str(output),
        ]
    )  # fmt: skip

    assert output.exists()
    assert set(report["curves"]) == {"uncertainty", "random"}
    for curve in report["curves"].values():
        assert [p["labels"] for p in curve] == [9, 15]
        assert all(0 <= p["accuracy"] <= 1 and 0 <= p["macro_f1"] <= 1 for p in curve)
    runs = report["runs"]
    assert runs["uncertainty"]["0"]["seed_set"] == runs["random"]["0"]["seed_set"]
    first = runs["uncertainty"]["0"]["points"][0]
    # Uncertainty sampling picks the least confident rows of the pool it scored.
    assert first["picked_mean_confidence"] <= first["pool_mean_confidence"]
    assert sum(first["picked_labels"].values()) == 6
    target = report["target"]["value"]
    assert target == report["curves"]["random"][-1]["accuracy"]
    assert report["labels_to_target"]["random"] is not None
    savings = report["label_savings"]
    assert savings is None or savings == pytest.approx(
        1 - report["labels_to_target"]["uncertainty"] / report["labels_to_target"]["random"],
        abs=1e-3,
    )
    assert report["per_seed"]["0"]["label_savings"] == savings  # one seed: the mean is it
    assert report["data"]["test"] == 9 and report["data"]["pool"] == 27


@pytest.mark.parametrize(
    ("curve", "target", "expected"),
    [
        ([(10, 0.5), (20, 0.7)], 0.6, 15.0),  # interpolated between the two points
        ([(10, 0.65), (20, 0.7)], 0.6, 10.0),  # already there at the first point
        ([(10, 0.5), (20, 0.8), (30, 0.6)], 0.6, 40 / 3),  # the first crossing counts
        ([(10, 0.5), (20, 0.55)], 0.6, None),  # never reached
    ],
)
def test_labels_to_reach(
    curve: list[tuple[int, float]], target: float, expected: float | None
) -> None:
    points = [{"labels": n, "accuracy": a} for n, a in curve]
    found = bench_module().labels_to_reach(points, target)
    assert found == (None if expected is None else pytest.approx(expected))
