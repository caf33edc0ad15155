"""A FineTuneJob's phase from its Job and pods: one row per situation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelloop.controllers.training_phase import observe_training


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


def unscheduled() -> dict[str, Any]:
    return {
        "metadata": {"name": "train-0-x", "annotations": {}},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }


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
    observation = observe_training(job_, pods)
    assert (observation.phase, observation.health.reason) == (phase, reason)
    expected_state = {"Succeeded": "ready", "Failed": "stalled"}.get(phase, "reconciling")
    assert observation.health.state == expected_state


def test_success_carries_the_result_and_times() -> None:
    done = job(("Complete", "CompletionsReached"), completionTime="2026-12-01T11:00:00Z")
    observation = observe_training(done, [pod(0, "Succeeded", exitCode=0, message=RESULT)])
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
    observation = observe_training(
        failed, [pod(1, "Failed", exitCode=2, message="spec.dataset: no rows")]
    )
    assert "train-1-abcde exited 2: spec.dataset: no rows" in observation.health.message


def test_unschedulable_carries_the_schedulers_words() -> None:
    observation = observe_training(job(), [unscheduled()])
    assert "Insufficient nvidia.com/gpu" in observation.health.message
