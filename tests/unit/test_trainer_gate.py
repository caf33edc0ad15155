"""The promotion gate (labelloop_trainer.training.gate), table-driven."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training.gate import judge
from labelloop_trainer.training.incumbent import Incumbent, check
from labelloop_trainer.training.settings import Promotion

NOW = {"macro_f1": 0.79, "accuracy": 0.81}
SERVING_BETTER = Incumbent("v1", {"macro_f1": 0.9, "accuracy": 0.81})
SERVING_WORSE = Incumbent("v1", {"macro_f1": 0.7, "accuracy": 0.80})
ZERO_SHOT = Incumbent("zero-shot", {"macro_f1": 0.41, "accuracy": 0.43})
OTHER_LABELS = Incumbent("v0", None, "the serving version v0 predicts other labels (a, b)")

GATE_CASES: list[tuple[str, Promotion | None, Incumbent | None, bool, str]] = [
    ("no gate", None, SERVING_BETTER, True, "no promotion gate"),
    ("meets the minimum, nothing serves", Promotion("f1", 0.75, True), None, True,
     "macro_f1 0.7900 ≥ 0.7500; nothing serves to improve on"),
    ("below the minimum", Promotion("f1", 0.80, False), None, False, "macro_f1 0.7900 < 0.8000"),
    ("improves on the serving version", Promotion("accuracy", 0.5, True), SERVING_WORSE, True,
     "improves on v1's 0.8000 on the same annotations"),
    ("equal is not an improvement", Promotion("accuracy", 0.5, True), SERVING_BETTER, False,
     "does not improve on v1's 0.8100"),
    ("a first version must beat zero-shot", Promotion("f1", 0.0, True), ZERO_SHOT, True,
     "improves on zero-shot's 0.4100"),
    ("mustImprove off ignores the serving version", Promotion("f1", 0.5, False), SERVING_BETTER,
     True, "macro_f1 0.7900 ≥ 0.5000"),
    ("a serving version of other labels is not compared", Promotion("f1", 0.5, True),
     OTHER_LABELS, True, "predicts other labels (a, b)"),
    ("serving version lacks the metric", Promotion("f1", 0.5, True),
     Incumbent("v1", {"accuracy": 0.9}), True, "macro_f1 of v1 was not computed"),
    ("metric not computed", Promotion("recall", 0.5, False), None, False,
     "macro_recall was not computed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("gate", "serving", "passed", "reason"),
    [case[1:] for case in GATE_CASES],
    ids=[case[0] for case in GATE_CASES],
)
def test_gate(gate: Promotion | None, serving: Incumbent | None, passed: bool, reason: str) -> None:
    verdict = judge(gate, NOW, serving)
    assert verdict.passed is passed
    assert reason in verdict.reason


def test_the_verdict_carries_both_scores_in_the_apis_names() -> None:
    verdict = judge(Promotion("f1", 0.0, True), NOW, SERVING_BETTER).to_json()
    assert verdict == {
        "passed": False,
        "reason": verdict["reason"],
        "metric": "macro_f1",
        "candidateScore": 0.79,
        "servingScore": 0.9,
        "servingVersion": "v1",
    }
    # The operator copies it into the FineTuneJob's status as it is.
    from labelloop.api.finetunejob import PromotionVerdict

    status = PromotionVerdict.model_validate(verdict)
    assert (status.candidate_score, status.serving_score) == (0.79, 0.9)


def test_nothing_compared_leaves_the_serving_score_out() -> None:
    verdict = judge(Promotion("f1", 0.0, True), NOW, OTHER_LABELS).to_json()
    assert "servingScore" not in verdict
    assert verdict["servingVersion"] == "v0"


def test_loss_gates_compare_downwards() -> None:
    verdict = judge(
        Promotion("eval_loss", 0.5, True), {"eval_loss": 0.4}, Incumbent("v1", {"eval_loss": 0.45})
    )
    assert verdict.passed
    assert "eval_loss 0.4000 ≤ 0.5000" in verdict.reason


def test_a_serving_version_that_is_no_version_fails_before_training(tmp_path: Path) -> None:
    check(None)
    with pytest.raises(BadInputError, match=r"previousVersionDir: model: .* is not a model"):
        check(tmp_path / "missing")
