"""`bench_al.py` end to end on the tiny model and a toy set: both learners, the report's shape."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

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


def run(tmp_path: Path, tiny_model: Path, *flags: str) -> dict[str, Any]:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(per_class=30))
    report: dict[str, Any] = bench_module().main(
        [
            "--data", str(data), "--text-field", "text", "--label-field", "label",
            "--base-model", str(tiny_model), "--test-size", "18", "--seed-size", "9",
            "--batch", "6", "--output", str(tmp_path / "al.json"), *flags,
        ]
    )  # fmt: skip
    assert (tmp_path / "al.json").exists()
    return report


def test_every_strategy_starts_alike_and_is_read_against_random(
    tmp_path: Path, tiny_model: Path
) -> None:
    report = run(tmp_path, tiny_model, "--budget", "21", "--seeds", "0,1")
    strategies = ["random", "uncertainty", "margin", "entropy", "entropy-diverse"]
    assert list(report["curves"]) == strategies
    assert report["settings"]["schedule"] == [9, 15, 21]
    for curve in report["curves"].values():
        assert [p["labels"] for p in curve] == [9, 15, 21]
        for point in curve:
            found = point["accuracy"]
            assert found["low"] <= found["mean"] <= found["high"]
            assert 0 <= found["mean"] <= 1
    runs = report["runs"]
    assert runs["margin"]["0"]["seed_set"] == runs["random"]["0"]["seed_set"]
    assert runs["margin"]["0"]["seed_set"] != runs["margin"]["1"]["seed_set"]
    assert sum(runs["margin"]["0"]["points"][0]["picked_labels"].values()) == 6
    # The budget is the only target within reach here.
    (target,) = report["label_savings"]
    assert target == "random_at_budget"
    margin = report["label_savings"][target]["margin"]
    savings = margin["label_savings"]
    assert savings["low"] <= savings["high"]
    assert savings["estimate"] <= 1
    assert len(margin["per_seed"]) == 2
    assert margin["beats_random"] is (savings["low"] > 0)


def test_the_trainer_learner_trains_a_version_a_round(tmp_path: Path, tiny_model: Path) -> None:
    report = run(
        tmp_path, tiny_model, "--learner", "trainer", "--budget", "15", "--seeds", "0",
        "--strategies", "margin",
    )  # fmt: skip
    assert report["settings"]["learner"] == "trainer"
    assert list(report["curves"]) == ["random", "margin"]
    assert [p["labels"] for p in report["curves"]["margin"]] == [9, 15]


def test_the_interval_is_a_t_interval() -> None:
    module = bench_module()
    assert module.interval([0.5]) == {"mean": 0.5, "low": 0.5, "high": 0.5}
    found = module.interval([0.1, 0.3])  # mean 0.2, sd 0.1414, t(1) 12.706
    assert found["mean"] == 0.2
    assert found["high"] == pytest.approx(0.2 + 12.706 * 0.1414214 / 2**0.5, abs=1e-4)
