"""Conditions that kstatus and Argo CD understand, computed from one summary of health.

kstatus reads, in order: `observedGeneration` behind `generation` → InProgress;
`Reconciling=True` → InProgress; `Stalled=True` → Failed; `Ready` → Current when True. So
each reconcile states all three, and keeps `lastTransitionTime` when a status did not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
