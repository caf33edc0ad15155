"""Deadlines: a wait on an outside cause is Reconciling until its deadline, Stalled after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labelloop.controllers.conditions import Deadline, Health, stalled_past, status_since

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEADLINE = Deadline("spec.resources.schedulingDeadlineSeconds", 600)
WAIT = Health("reconciling", "Unschedulable", "0/3 nodes are available")

CASES = [
    # (case, health, seconds waited, state after, message ends with)
    ("a wait just begun", WAIT, 0, "reconciling", "0/3 nodes are available"),
    ("a wait exactly at the deadline", WAIT, 600, "reconciling", "0/3 nodes are available"),
    (
        "a wait one second past it",
        WAIT,
        601,
        "stalled",
        "waiting since 2026-12-01T12:00:00Z, longer than "
        "spec.resources.schedulingDeadlineSeconds (600s)",
    ),
    ("hours past it", WAIT, 7322, "stalled", "waiting since 2026-12-01T12:00:00Z, longer than"),
    ("ready is never overdue", Health("ready", "Running", "ok"), 9999, "ready", "ok"),
    (
        "stalled stays as it was",
        Health("stalled", "InvalidSpec", "bad field"),
        9999,
        "stalled",
        "bad field",
    ),
]


@pytest.mark.parametrize(
    ("case", "health", "waited", "state", "message_end"), CASES, ids=[c[0] for c in CASES]
)
def test_stalled_past(case: str, health: Health, waited: int, state: str, message_end: str) -> None:
    after = stalled_past(DEADLINE, health, T0, T0 + timedelta(seconds=waited))
    assert after.state == state
    assert after.reason == health.reason  # the cause stays the reason
    assert message_end in after.message
    assert after.message.startswith(health.message)


@pytest.mark.parametrize("waited", [45, 120, 3600])
def test_the_message_says_since_when_and_stays_the_same_while_the_stall_goes_on(
    waited: int,
) -> None:
    """A message that counted the time would change the status at every look: a write."""
    short = Deadline("spec.labelStudio.connectionDeadlineSeconds", 10)
    after = stalled_past(short, WAIT, T0, T0 + timedelta(seconds=waited))
    assert after.message == (
        "0/3 nodes are available; waiting since 2026-12-01T12:00:00Z, longer than "
        "spec.labelStudio.connectionDeadlineSeconds (10s)"
    )


def condition(type_: str, status: str, at: str | None = "2026-12-01T12:00:00Z") -> dict[str, Any]:
    found: dict[str, Any] = {"type": type_, "status": status, "reason": "R"}
    if at is not None:
        found["lastTransitionTime"] = at
    return found


SINCE_CASES = [
    ("no conditions yet", None, None),
    ("the type is absent", [condition("Ready", "False")], None),
    ("it has the other status", [condition("LabelStudioReachable", "True")], None),
    ("it has the status", [condition("LabelStudioReachable", "False")], T0),
    ("no transition time", [condition("LabelStudioReachable", "False", None)], None),
]


@pytest.mark.parametrize(
    ("case", "conditions", "since"), SINCE_CASES, ids=[c[0] for c in SINCE_CASES]
)
def test_status_since(
    case: str, conditions: list[dict[str, Any]] | None, since: datetime | None
) -> None:
    assert status_since(conditions, "LabelStudioReachable", "False") == since
