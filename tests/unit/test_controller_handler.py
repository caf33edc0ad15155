"""The shared reconcile preamble: spec parsing, typed status writes and reads, metrics."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from labelloop import metrics
from labelloop.api import API_VERSION, FINE_TUNE_JOB, FineTuneJobSpec
from labelloop.api.finetunejob import FineTuneJobStatus
from labelloop.controllers.conditions import Health
from labelloop.controllers.handler import Reconcile, reconciler

SPEC: dict[str, Any] = {
    "dataset": {"uri": "pvc://data/train.jsonl"},
    "baseModel": {"uri": "pvc://models/base"},
    "output": {"uri": "pvc://models/out"},
}


def body(spec: dict[str, Any], status: dict[str, Any] | None = None) -> kopf.Body:
    raw: Any = {
        "apiVersion": API_VERSION,
        "kind": FINE_TUNE_JOB.kind,
        "metadata": {"name": "job", "namespace": "ml", "uid": "u-1", "generation": 3},
        "spec": spec,
        "status": status or {},
    }
    return kopf.Body(raw)


def call(handler: Any, obj: kopf.Body) -> kopf.Patch:
    patch = kopf.Patch()
    handler(body=obj, meta=obj.meta, status=obj.status, patch=patch, memo=kopf.Memo(context=None))
    return patch


@pytest.fixture(autouse=True)
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Events the pass posts, as (type, reason); kopf posts them only inside its own loop."""
    posted: list[tuple[str, str]] = []
    for kind in ("info", "warn"):
        monkeypatch.setattr(
            kopf,
            kind,
            lambda _body, *, reason, message="", kind=kind: posted.append((kind, reason)),
        )
    return posted


def count(kind: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "labelloop_reconciles_total", {"kind": kind, "outcome": outcome}
    )
    return value or 0.0


def test_a_valid_spec_reaches_the_handler_typed_and_its_status_is_written_by_alias(
    events: list[tuple[str, str]],
) -> None:
    seen: list[FineTuneJobSpec] = []

    @reconciler(FINE_TUNE_JOB, FineTuneJobSpec)
    def handle(run: Reconcile, spec: FineTuneJobSpec) -> None:
        seen.append(spec)
        run.write(FineTuneJobStatus(job_name="job-x", artifact_uri=None))
        run.report(Health("ready", "Done", "all good"))

    before = count(FINE_TUNE_JOB.kind, "ready")
    patch = call(handle, body(SPEC))
    assert isinstance(seen[0], FineTuneJobSpec)
    status = patch["status"]
    # Only the fields set are written; a field set to None is written as null (cleared).
    assert status["jobName"] == "job-x"
    assert "artifactUri" in status and status["artifactUri"] is None
    assert "phase" not in status
    assert status["observedGeneration"] == 3
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Done", 3)
    assert count(FINE_TUNE_JOB.kind, "ready") == before + 1
    assert events == [("info", "Done")]  # Ready flipped


def test_an_invalid_spec_never_reaches_the_handler_and_stalls_naming_the_field(
    events: list[tuple[str, str]],
) -> None:
    @reconciler(FINE_TUNE_JOB, FineTuneJobSpec)
    def handle(run: Reconcile, spec: FineTuneJobSpec) -> None:
        raise AssertionError("called with an invalid spec")

    bad = {**SPEC, "hyperparameters": {"learningRate": -1}}
    before = count(FINE_TUNE_JOB.kind, "stalled")
    patch = call(handle, body(bad))
    stalled = next(c for c in patch["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.hyperparameters.learningRate" in stalled["message"]
    assert count(FINE_TUNE_JOB.kind, "stalled") == before + 1
    assert events == [("warn", "InvalidSpec")]


def test_an_exception_counts_as_an_error_and_reaches_kopf() -> None:
    @reconciler(FINE_TUNE_JOB, FineTuneJobSpec)
    def handle(run: Reconcile, spec: FineTuneJobSpec) -> None:
        raise RuntimeError("API hiccup")

    before = count(FINE_TUNE_JOB.kind, "error")
    with pytest.raises(RuntimeError):
        call(handle, body(SPEC))
    assert count(FINE_TUNE_JOB.kind, "error") == before + 1


@pytest.mark.parametrize(
    ("stored", "phase"),
    [
        ({"phase": "Running", "jobName": "job"}, "Running"),
        ({}, None),
        # Not a phase the model knows: read as an empty status, never a crashed reconcile.
        ({"phase": "Exploded"}, None),
    ],
)
def test_previous_status_is_read_back_through_the_model(
    stored: dict[str, Any], phase: str | None
) -> None:
    phases: list[str | None] = []

    @reconciler(FINE_TUNE_JOB, FineTuneJobSpec)
    def handle(run: Reconcile, spec: FineTuneJobSpec) -> None:
        phases.append(run.previous(FineTuneJobStatus).phase)

    call(handle, body(SPEC, stored))
    assert phases == [phase]
