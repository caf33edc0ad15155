"""A FineTuneJob's phase, read off its Job and pods: a pure function, tested by table.

Pods the scheduler cannot place (no node has the GPUs asked for, a PersistentVolumeClaim that
does not exist) keep the run Pending and Reconciling until `spec.resources.
schedulingDeadlineSeconds` has passed since the first of them failed to be placed, then
Stalled with the cause as the reason; it is Reconciling again once they are placed. Until the
deadline, the observation says when to look again (`recheck_in`): nothing else wakes a wait.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .conditions import ConditionUpdate, Deadline, Health, seconds_left, stalled_past

RESULT_CONTAINER = "trainer"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
SCHEDULING_DEADLINE_FIELD = "spec.resources.schedulingDeadlineSeconds"


@dataclass(frozen=True)
class TrainingObservation:
    phase: str
    health: Health
    start_time: str | None = None
    completion_time: str | None = None
    result: dict[str, Any] | None = None
    extra: list[ConditionUpdate] = field(default_factory=list)
    recheck_in: float | None = None
    """Seconds until the scheduling deadline passes, while pods wait within it."""

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in job.get("status", {}).get("conditions") or ():
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or ():
        if status.get("name") == RESULT_CONTAINER:
            terminated = (status.get("state") or {}).get("terminated")
            return dict(terminated) if terminated else None
    return None


def _rank0_message(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        if pod.get("metadata", {}).get("annotations", {}).get(COMPLETION_INDEX) == "0":
            terminated = _terminated(pod)
            if terminated and terminated.get("message"):
                return str(terminated["message"]).strip()
    return None


def _failure_messages(pods: list[dict[str, Any]]) -> list[str]:
    messages = []
    for pod in pods:
        terminated = _terminated(pod)
        if terminated and terminated.get("exitCode") not in (None, 0):
            text = (terminated.get("message") or terminated.get("reason") or "").strip()
            name = pod.get("metadata", {}).get("name", "?")
            messages.append(f"{name} exited {terminated['exitCode']}: {text}".rstrip(": "))
    return messages


@dataclass(frozen=True)
class _Unplaced:
    """Why the scheduler does not place a pod, in its own words, and since when."""

    message: str
    since: datetime


def _unplaced(pod: dict[str, Any], now: datetime) -> _Unplaced | None:
    for c in pod.get("status", {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            message = str(c.get("message") or c.get("reason") or "unschedulable")
            since = c.get("lastTransitionTime") or pod.get("metadata", {}).get("creationTimestamp")
            return _Unplaced(message, datetime.fromisoformat(since) if since else now)
    return None


def _longest_unplaced(pods: list[dict[str, Any]], now: datetime) -> _Unplaced | None:
    waits = [w for pod in pods if (w := _unplaced(pod, now)) is not None]
    return min(waits, key=lambda w: w.since, default=None)


def unplaced_claims(pods: list[dict[str, Any]]) -> list[str]:
    """The PersistentVolumeClaims mounted by pods the scheduler has not placed: the ones worth
    looking up, since a missing claim is a cause a person must fix."""
    claims = {
        volume["persistentVolumeClaim"]["claimName"]
        for pod in pods
        if any(
            c.get("type") == "PodScheduled" and c.get("status") == "False"
            for c in pod.get("status", {}).get("conditions") or ()
        )
        for volume in pod.get("spec", {}).get("volumes") or ()
        if volume.get("persistentVolumeClaim")
    }
    return sorted(claims)


def _finished(phase: str, reason: str, message: str) -> list[ConditionUpdate]:
    ok = phase == "Succeeded"
    return [
        ConditionUpdate("Succeeded", "True" if ok else "False", reason, message),
        ConditionUpdate("Failed", "False" if ok else "True", reason, message),
    ]


def observe_training(
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    scheduling_deadline_seconds: int,
    now: datetime,
    missing_claims: Collection[str] = (),
) -> TrainingObservation:
    """Phase, health and result of a training run from what the cluster shows; `missing_claims`
    are those of `unplaced_claims(pods)` that do not exist."""
    if job is None:
        return TrainingObservation("Pending", Health("reconciling", "Creating", "creating the Job"))
    status = job.get("status", {})
    start = status.get("startTime")

    if complete := _job_condition(job, "Complete"):
        end = status.get("completionTime") or complete.get("lastTransitionTime")
        raw = _rank0_message(pods)
        if raw is None:
            message = (
                "the Job completed but rank 0 reported no result in its termination message "
                "(a trainer that exited early, or pods that only pretend to run)"
            )
            return _failed(start, end, "ResultMissing", message)
        try:
            result = json.loads(raw)
        except json.JSONDecodeError:
            return _failed(
                start, end, "ResultUnreadable", f"rank 0's result is not JSON: {raw[:200]}"
            )
        if not isinstance(result, dict) or not result.get("modelVersion"):
            return _failed(start, end, "ResultUnreadable", "rank 0's result has no modelVersion")
        message = f"trained model version {result['modelVersion']}"
        return TrainingObservation(
            "Succeeded",
            Health("ready", "Succeeded", message),
            start,
            end,
            result,
            _finished("Succeeded", "Succeeded", message),
        )

    if failed := _job_condition(job, "Failed") or _job_condition(job, "FailureTarget"):
        end = failed.get("lastTransitionTime")
        details = "; ".join(_failure_messages(pods))
        message = str(failed.get("message") or "the Job failed")
        return _failed(
            start, end, str(failed.get("reason") or "JobFailed"), f"{message} {details}".strip()
        )

    if job.get("spec", {}).get("suspend"):
        queue = job.get("metadata", {}).get("labels", {}).get("kueue.x-k8s.io/queue-name")
        message = f"waiting for Kueue to admit the Job from queue {queue}" if queue else "suspended"
        return TrainingObservation("Pending", Health("reconciling", "Queued", message), start)

    if any(p.get("status", {}).get("phase") == "Running" for p in pods):
        running = sum(p.get("status", {}).get("phase") == "Running" for p in pods)
        message = f"{running} of {job.get('spec', {}).get('completions', 1)} pods running"
        return TrainingObservation("Running", Health("reconciling", "Running", message), start)

    if unplaced := _longest_unplaced(pods, now):
        if missing_claims:
            names = ", ".join(sorted(missing_claims))
            one = len(missing_claims) == 1
            message = (
                f"PersistentVolumeClaim{'' if one else 's'} {names} not found: the pods "
                f"cannot be scheduled until {'it exists' if one else 'they exist'}"
            )
            waiting = Health("reconciling", "ClaimNotFound", message)
        else:
            waiting = Health("reconciling", "Unschedulable", unplaced.message)
        deadline = Deadline(SCHEDULING_DEADLINE_FIELD, scheduling_deadline_seconds)
        health = stalled_past(deadline, waiting, unplaced.since, now)
        left = seconds_left(deadline, unplaced.since, now)
        return TrainingObservation("Pending", health, start, recheck_in=left)
    return TrainingObservation(
        "Pending", Health("reconciling", "Starting", "pods are starting"), start
    )


def _failed(start: str | None, end: str | None, reason: str, message: str) -> TrainingObservation:
    return TrainingObservation(
        "Failed",
        Health("stalled", reason, message),
        start,
        end,
        None,
        _finished("Failed", reason, message),
    )
