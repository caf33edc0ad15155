"""Conditions that kstatus and Argo CD understand, computed from one summary of health.

kstatus reads, in order: `observedGeneration` behind `generation` → InProgress;
`Reconciling=True` → InProgress; `Stalled=True` → Failed; `Ready` → Current when True. So
each reconcile states all three, and keeps `lastTransitionTime` when a status did not change.

A wait on something outside the operator's hands (pods no node can take, a Label Studio that
does not answer) is Reconciling until its `Deadline` has passed and Stalled after it, like a
Deployment past its `progressDeadlineSeconds`: a GitOps tool then reports it as failed instead
of waiting for ever, and the object goes back to Reconciling or Ready once the cause is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]

# metav1.Condition's limit; a longer message (a server's error page) is cut, not refused.
MAX_MESSAGE = 32768


@dataclass(frozen=True)
class ConditionUpdate:
    type: str
    status: Status
    reason: str
    message: str = ""


@dataclass(frozen=True)
class Health:
    """What a reconcile concluded: one of ready, reconciling or stalled, with why."""

    state: Literal["ready", "reconciling", "stalled"]
    reason: str
    message: str = ""

    def updates(self) -> list[ConditionUpdate]:
        def flag(on: bool) -> Status:
            return "True" if on else "False"

        return [
            ConditionUpdate("Ready", flag(self.state == "ready"), self.reason, self.message),
            ConditionUpdate(
                "Reconciling", flag(self.state == "reconciling"), self.reason, self.message
            ),
            ConditionUpdate("Stalled", flag(self.state == "stalled"), self.reason, self.message),
        ]


@dataclass(frozen=True)
class Deadline:
    """How long a wait may last before it counts as Stalled; `field` is the spec field that set
    it, named in the message."""

    field: str
    seconds: int


def stalled_past(deadline: Deadline, health: Health, since: datetime, now: datetime) -> Health:
    """`health`, a wait on a cause that began at `since`, turned Stalled once the wait has lasted
    longer than `deadline`: the same reason, and the message says since when (a time, not a
    duration, so that a stall that goes on does not rewrite the status). Within the deadline,
    and for anything that is not a wait, `health` is returned as it is."""
    waited = now - since
    if health.state != "reconciling" or waited <= timedelta(seconds=deadline.seconds):
        return health
    message = (
        f"{health.message}; waiting since {since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}, longer "
        f"than {deadline.field} ({deadline.seconds}s)"
    )
    return Health("stalled", health.reason, message)


def seconds_left(deadline: Deadline, since: datetime, now: datetime) -> float | None:
    """Seconds until a wait that began at `since` has outlasted `deadline`, so that
    `stalled_past` says Stalled (a second past it, so no clock lands on the deadline itself);
    None once it has. A reconcile asks to look again then: nothing else may wake it."""
    left = (since + timedelta(seconds=deadline.seconds) - now).total_seconds()
    return left + 1.0 if left >= 0 else None


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_conditions(
    previous: Sequence[dict[str, Any]] | None,
    updates: Iterable[ConditionUpdate],
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """The new condition list: updated ones replaced, others kept, transition times honest."""
    by_type = {c["type"]: dict(c) for c in previous or ()}
    for update in updates:
        old = by_type.get(update.type)
        changed = old is None or old.get("status") != update.status
        condition: dict[str, Any] = {
            "type": update.type,
            "status": update.status,
            "reason": update.reason,
            "message": update.message[:MAX_MESSAGE],
            "lastTransitionTime": now if changed or old is None else old["lastTransitionTime"],
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        by_type[update.type] = condition
    return list(by_type.values())


def condition_status(conditions: Sequence[dict[str, Any]] | None, type_: str) -> str | None:
    for c in conditions or ():
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def status_since(
    conditions: Sequence[dict[str, Any]] | None, type_: str, status: Status
) -> datetime | None:
    """When condition `type_` took `status`, if that is its status now; else None."""
    for c in conditions or ():
        if c.get("type") == type_ and c.get("status") == status and c.get("lastTransitionTime"):
            return datetime.fromisoformat(str(c["lastTransitionTime"]))
    return None
