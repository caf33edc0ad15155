"""The promotion gate (labelloop_trainer.training.gate), table-driven."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training.gate import judge, previous_metrics
from labelloop_trainer.training.settings import Promotion

NOW = {"macro_f1": 0.79, "accuracy": 0.81}

GATE_CASES: list[tuple[str, Promotion | None, dict[str, float] | None, bool, str]] = [
    ("no gate", None, None, True, "no promotion gate"),
    ("meets the minimum, first version", Promotion("f1", 0.75, True), None, True,
     "macro_f1 0.7900 ≥ 0.7500; no previous version"),
    ("below the minimum", Promotion("f1", 0.80, False), None, False, "macro_f1 0.7900 < 0.8000"),
    ("improves on the previous", Promotion("accuracy", 0.5, True), {"accuracy": 0.80}, True,
     "improves on the previous 0.8000"),
    ("equal is not an improvement", Promotion("accuracy", 0.5, True), {"accuracy": 0.81}, False,
     "does not improve on the previous 0.8100"),
    ("mustImprove off ignores the previous", Promotion("f1", 0.5, False), {"macro_f1": 0.9},
     True, "macro_f1 0.7900 ≥ 0.5000"),
    ("previous lacks the metric", Promotion("f1", 0.5, True), {"accuracy": 0.9}, True,
     "no previous version"),
    ("metric not computed", Promotion("recall", 0.5, False), None, False,
     "macro_recall was not computed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("gate", "previous", "passed", "reason"),
    [case[1:] for case in GATE_CASES],
    ids=[case[0] for case in GATE_CASES],
)
def test_gate(
    gate: Promotion | None, previous: dict[str, float] | None, passed: bool, reason: str
) -> None:
    verdict = judge(gate, NOW, previous)
    assert verdict.passed is passed
    assert reason in verdict.reason


def test_loss_gates_compare_downwards() -> None:
    verdict = judge(Promotion("eval_loss", 0.5, True), {"eval_loss": 0.4}, {"eval_loss": 0.45})
    assert verdict.passed
    assert "eval_loss 0.4000 ≤ 0.5000" in verdict.reason


def test_previous_metrics_read_a_version(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(
        json.dumps({"metrics": {"macro_f1": 0.7, "per_class": {}}, "bestEpoch": 2}),
        encoding="utf-8",
    )
    assert previous_metrics(tmp_path) == {"macro_f1": 0.7}
    assert previous_metrics(None) is None
    with pytest.raises(BadInputError, match="previous version"):
        previous_metrics(tmp_path / "missing")
