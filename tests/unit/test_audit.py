"""The audit trail: a decision is an Event, a structured log line and a count, once."""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf
import pytest

from labelloop import metrics
from labelloop.api import API_VERSION, PRELABEL_SERVICE
from labelloop.api.annotationproject import AnnotationProjectStatus, AnnotatorStatus
from labelloop.api.finetunejob import FineTuneJobStatus, PromotionVerdict
from labelloop.controllers import audit
from labelloop.controllers.audit import Decision
from labelloop.controllers.conditions import Health
from labelloop.controllers.finetunejob import gate_verdict
from labelloop.controllers.handler import Reconcile
from labelloop.controllers.project_sync import tier_changes
from labelloop.loop.annotators import AnnotatorScore, Tier
from labelloop.resources.common import Owner


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Events posted, as (type, reason, message); kopf posts them only inside its own loop."""
    posted: list[tuple[str, str, str]] = []
    for kind in ("info", "warn"):
        monkeypatch.setattr(
            kopf,
            kind,
            lambda _body, *, reason, message="", kind=kind: posted.append((kind, reason, message)),
        )
    return posted


def service_pass(status: dict[str, Any] | None = None) -> Reconcile:
    raw: Any = {
        "apiVersion": API_VERSION,
        "kind": PRELABEL_SERVICE.kind,
        "metadata": {"name": "pls", "namespace": "ml", "uid": "u-1", "generation": 1},
        "spec": {"annotationProjectRef": {"name": "reviews"}},
        "status": status or {},
    }
    body = kopf.Body(raw)
    return Reconcile(
        body=body,
        meta=body.meta,
        status=body.status,
        patch=kopf.Patch(),
        context=None,  # type: ignore[arg-type]  # the audit never reads it
        owner=Owner.of(PRELABEL_SERVICE.kind, body.meta),
        outcomes=[],
    )


def decisions(decision: str, outcome: str) -> float:
    labels = {
        "kind": "PrelabelService",
        "namespace": "ml",
        "project": "reviews",
        "decision": decision,
        "outcome": outcome,
    }
    return metrics.registry.get_sample_value("labelloop_decisions_total", labels) or 0.0


def test_a_decision_is_an_event_a_structured_log_line_and_a_count(
    events: list[tuple[str, str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    before = decisions("Promoted", "")
    decision = Decision("Promoted", "version v2 is active", {"target": "v2", "readyReplicas": 2})
    with caplog.at_level(logging.INFO, logger="labelloop.audit"):
        audit.record(service_pass(), decision)
    assert events == [("info", "Promoted", "version v2 is active")]
    [line] = [r for r in caplog.records if r.name == "labelloop.audit"]
    assert line.getMessage() == "PrelabelService ml/pls: Promoted: version v2 is active"
    fields = {k: getattr(line, k) for k in ("decision", "object", "project", "figures")}
    assert json.loads(json.dumps(fields)) == {
        "decision": "Promoted",
        "object": {"kind": "PrelabelService", "namespace": "ml", "name": "pls"},
        "project": "reviews",
        "figures": {"target": "v2", "readyReplicas": 2},
    }
    assert decisions("Promoted", "") == before + 1


def test_a_rollback_told_by_its_decision_is_not_posted_again_as_the_stalled_transition(
    events: list[tuple[str, str, str]],
) -> None:
    run = service_pass()
    rolled_back = Decision("RolledBack", "version v2 rolled back", warning=True, outcome="NotReady")
    audit.record(run, rolled_back)
    run.report(Health("stalled", "RolledBack", "version v2 rolled back"))
    assert events == [("warn", "RolledBack", "version v2 rolled back")]
    stalled = next(c for c in run.patch["status"]["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")


def scores(*rows: tuple[str, Tier, float | None]) -> list[AnnotatorScore]:
    return [
        AnnotatorScore(annotator=who, annotations=10, compared=10, correct=0, accuracy=acc, tier=t)
        for who, t, acc in rows
    ]


def prior(*rows: tuple[str, Tier]) -> AnnotationProjectStatus:
    return AnnotationProjectStatus(
        annotators=[AnnotatorStatus(annotator=who, annotations=5, tier=t) for who, t in rows]
    )


@pytest.mark.parametrize(
    ("before", "after", "message", "figures"),
    [
        pytest.param(
            prior(("1", "standard")), scores(("1", "standard", 0.9)), None, None, id="same"
        ),
        pytest.param(
            prior(("1", "standard"), ("2", "expert")),
            scores(("1", "expert", 0.96), ("2", "expert", 0.99)),
            "1 annotator(s) changed tier: annotator 1: standard -> expert (accuracy 0.96)",
            {"changed": 1, "expert": 2, "standard": 0, "basic": 0, "unrated": 0},
            id="promoted",
        ),
        pytest.param(
            prior(),
            scores(("7", "unrated", None), ("8", "basic", 0.5)),
            "1 annotator(s) changed tier: annotator 8: unrated -> basic (accuracy 0.50)",
            {"changed": 1, "expert": 0, "standard": 0, "basic": 1, "unrated": 1},
            id="a newcomer starts unrated",
        ),
    ],
)
def test_tier_changes_are_one_decision_per_pass(
    before: AnnotationProjectStatus,
    after: list[AnnotatorScore],
    message: str | None,
    figures: dict[str, int] | None,
) -> None:
    found = tier_changes(before, after)
    if message is None:
        assert found == []
        return
    [decision] = found
    assert (decision.reason, decision.message, dict(decision.figures)) == (
        "AnnotatorTiersChanged",
        message,
        figures,
    )


def test_many_tier_changes_name_ten_and_count_the_rest() -> None:
    after = scores(*[(str(i), "basic", 0.5) for i in range(25)])
    [decision] = tier_changes(prior(), after)
    assert decision.message.count("annotator ") == 10
    assert decision.message.endswith("; and 15 more")
    assert decision.figures["changed"] == 25


@pytest.mark.parametrize(
    ("passed", "reason"), [(True, "PromotionGatePassed"), (False, "PromotionGateRefused")]
)
def test_the_gate_verdict_names_the_version_the_reason_and_the_metrics(
    passed: bool, reason: str
) -> None:
    result = FineTuneJobStatus(
        model_version="reviews-r2-abc",
        metrics={"macro_f1": 0.61, "accuracy": 0.7},
        promotion=PromotionVerdict(passed=passed, reason="macro_f1 0.61 vs minimum 0.6"),
    )
    decision = gate_verdict(result)
    assert decision.reason == reason
    assert "reviews-r2-abc" in decision.message
    assert "macro_f1 0.61 vs minimum 0.6" in decision.message
    assert "accuracy 0.7000, macro_f1 0.6100" in decision.message
    assert dict(decision.figures) == {
        "macro_f1": 0.61,
        "accuracy": 0.7,
        "version": "reviews-r2-abc",
        "passed": passed,
    }
