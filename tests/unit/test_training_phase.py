"""A FineTuneJob's phase from its Job and pods: one row per situation."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labelloop.controllers.training_phase import (
    TrainingObservation,
    observe_training,
    unplaced_claims,
)

# The scheduler gave up on the pod at UNPLACED; the run's deadline to place it is 600 s.
UNPLACED = datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)
DEADLINE_S = 600


def observe(
    job_: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    after: float = 0,
    missing: Collection[str] = (),
) -> TrainingObservation:
    """observe_training `after` seconds past UNPLACED."""
    return observe_training(
        job_,
        pods,
        scheduling_deadline_seconds=DEADLINE_S,
        now=UNPLACED + timedelta(seconds=after),
        missing_claims=missing,
    )


def job(*conditions: tuple[str, str], suspend: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"kueue.x-k8s.io/queue-name": "gpu-team"} if suspend else {}},
        "spec": {"completions": 2, "suspend": suspend},
        "status": {
            "startTime": "2026-12-01T10:00:00Z",
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{t} {r}"}
                for t, r in conditions
            ],
            **status,
        },
    }


def pod(index: int, phase: str = "Running", **container: Any) -> dict[str, Any]:
    state = {"terminated": container} if container else {"running": {}}
    return {
        "metadata": {
            "name": f"train-{index}-abcde",
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
        },
        "status": {"phase": phase, "containerStatuses": [{"name": "trainer", "state": state}]},
    }


def unscheduled(
    message: str = "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
    since: str = "2026-12-01T10:00:05Z",
) -> dict[str, Any]:
    return {
        "metadata": {"name": "train-0-x", "annotations": {}},
        "spec": {
            "volumes": [
                {"name": "shm", "emptyDir": {"medium": "Memory"}},
                {"name": "models", "persistentVolumeClaim": {"claimName": "models"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            ]
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": since,
                }
            ],
        },
    }


NO_CLAIM = 'persistentvolumeclaim "models" not found'


RESULT = json.dumps({"modelVersion": "reviews-r3-1a2b3c4d", "metrics": {"f1": 0.8}})

CASES = [
    ("no job yet", None, [], "Pending", "Creating"),
    ("queued in kueue", job(suspend=True), [], "Pending", "Queued"),
    ("cannot be placed", job(), [unscheduled()], "Pending", "Unschedulable"),
    ("pods starting", job(), [pod(0, "Pending")], "Pending", "Starting"),
    ("running", job(), [pod(0), pod(1)], "Running", "Running"),
    (
        "complete with result",
        job(("Complete", "CompletionsReached"), completionTime="2026-12-01T11:00:00Z"),
        [pod(0, "Succeeded", exitCode=0, message=RESULT), pod(1, "Succeeded", exitCode=0)],
        "Succeeded",
        "Succeeded",
    ),
    (
        "complete without result",
        job(("Complete", "CompletionsReached")),
        [pod(0, "Succeeded", exitCode=0), pod(1, "Succeeded", exitCode=0)],
        "Failed",
        "ResultMissing",
    ),
    (
        "result is not json",
        job(("Complete", "CompletionsReached")),
        [pod(0, "Succeeded", exitCode=0, message="done!")],
        "Failed",
        "ResultUnreadable",
    ),
    (
        "result without a version",
        job(("Complete", "CompletionsReached")),
        [pod(0, "Succeeded", exitCode=0, message='{"metrics": {}}')],
        "Failed",
        "ResultUnreadable",
    ),
    (
        "a rank failed",
        job(("Failed", "PodFailurePolicy")),
        [pod(0, "Failed", exitCode=2, message="spec.dataset: no rows"), pod(1)],
        "Failed",
        "PodFailurePolicy",
    ),
    (
        "failure target set",
        job(("FailureTarget", "BackoffLimitExceeded")),
        [],
        "Failed",
        "BackoffLimitExceeded",
    ),
]


@pytest.mark.parametrize(
    ("case", "job_", "pods", "phase", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_phase(
    case: str, job_: dict[str, Any] | None, pods: list[dict[str, Any]], phase: str, reason: str
) -> None:
    observation = observe(job_, pods)
    assert (observation.phase, observation.health.reason) == (phase, reason)
    expected_state = {"Succeeded": "ready", "Failed": "stalled"}.get(phase, "reconciling")
    assert observation.health.state == expected_state


def test_success_carries_the_result_and_times() -> None:
    done = job(("Complete", "CompletionsReached"), completionTime="2026-12-01T11:00:00Z")
    observation = observe(done, [pod(0, "Succeeded", exitCode=0, message=RESULT)])
    assert observation.result == json.loads(RESULT)
    assert (observation.start_time, observation.completion_time) == (
        "2026-12-01T10:00:00Z",
        "2026-12-01T11:00:00Z",
    )
    assert {(c.type, c.status) for c in observation.extra} == {
        ("Succeeded", "True"),
        ("Failed", "False"),
    }


def test_failure_names_the_rank_and_its_message() -> None:
    failed = job(("Failed", "PodFailurePolicy"))
    observation = observe(failed, [pod(1, "Failed", exitCode=2, message="spec.dataset: no rows")])
    assert "train-1-abcde exited 2: spec.dataset: no rows" in observation.health.message


def test_unschedulable_carries_the_schedulers_words() -> None:
    observation = observe(job(), [unscheduled()])
    assert "Insufficient nvidia.com/gpu" in observation.health.message


# Pods that cannot be placed: (case, pods, seconds past UNPLACED, missing claims, (state,
# reason)). The run is Stalled only past schedulingDeadlineSeconds, and recovers once placed.
DEADLINE_CASES = [
    (
        "no node fits, within the deadline",
        [unscheduled()],
        600,
        (),
        ("reconciling", "Unschedulable"),
    ),
    (
        "no node fits, past the deadline",
        [unscheduled()],
        601,
        (),
        ("stalled", "Unschedulable"),
    ),
    (
        "claim missing, within the deadline",
        [unscheduled(NO_CLAIM)],
        30,
        ["models"],
        ("reconciling", "ClaimNotFound"),
    ),
    (
        "claim missing, past the deadline",
        [unscheduled(NO_CLAIM)],
        900,
        ["models"],
        ("stalled", "ClaimNotFound"),
    ),
    (
        "placed after the deadline: running again",
        [pod(0)],
        5000,
        (),
        ("reconciling", "Running"),
    ),
    (
        "placed after the deadline: starting",
        [pod(0, "Pending")],
        5000,
        (),
        ("reconciling", "Starting"),
    ),
    # The longest wait counts: the second rank has waited since 09:50.
    (
        "the longest-waiting rank counts",
        [unscheduled(), unscheduled(since="2026-12-01T09:50:00Z")],
        300,
        (),
        ("stalled", "Unschedulable"),
    ),
]


@pytest.mark.parametrize(
    ("case", "pods", "after", "missing", "expected"),
    DEADLINE_CASES,
    ids=[c[0] for c in DEADLINE_CASES],
)
def test_scheduling_deadline(
    case: str,
    pods: list[dict[str, Any]],
    after: float,
    missing: list[str],
    expected: tuple[str, str],
) -> None:
    observation = observe(job(), pods, after=after, missing=missing)
    assert (observation.health.state, observation.health.reason) == expected
    # A stalled run is not a failed one: it stays Pending, with no Failed condition, so it can
    # still recover.
    assert observation.phase in ("Pending", "Running") and observation.extra == []


def test_a_stall_says_why_since_when_and_which_field_set_the_deadline() -> None:
    observation = observe(job(), [unscheduled()], after=750)
    assert observation.health.message == (
        "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.; waiting since "
        "2026-12-01T10:00:05Z, longer than spec.resources.schedulingDeadlineSeconds (600s)"
    )


def test_a_missing_claim_is_named() -> None:
    one = observe(job(), [unscheduled(NO_CLAIM)], missing=["models"]).health.message
    assert one.startswith("PersistentVolumeClaim models not found")
    two = observe(job(), [unscheduled(NO_CLAIM)], missing=["models", "data"]).health.message
    assert two.startswith("PersistentVolumeClaims data, models not found")


def test_a_queued_job_never_runs_out_of_time() -> None:
    # Time in a Kueue queue is a chosen wait, not a fault: no deadline.
    observation = observe(job(suspend=True), [], after=10**6)
    assert (observation.health.state, observation.health.reason) == ("reconciling", "Queued")


def test_claims_are_looked_up_only_for_pods_that_cannot_be_placed() -> None:
    assert unplaced_claims([unscheduled(), unscheduled()]) == ["data", "models"]
    assert unplaced_claims([pod(0), pod(1, "Pending")]) == []
