"""Writing a reconcile's conclusion: observedGeneration, conditions, and an Event on change."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import kopf

from ..api.base import CommonStatus, Condition
from .conditions import ConditionUpdate, Health, condition_status, merge_conditions, now_rfc3339


def report(
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    health: Health,
    generation: int | None,
    *,
    extra: Iterable[ConditionUpdate] = (),
    announced: Collection[str] = (),
) -> None:
    """Patch the standard conditions (plus `extra`); post an Event when Ready or Stalled flips,
    unless this pass posted one with the same reason already (`announced`)."""
    previous = status.get("conditions")
    merged = merge_conditions(previous, [*health.updates(), *extra], generation, now_rfc3339())
    common = CommonStatus(
        observed_generation=generation,
        conditions=[Condition.model_validate(c) for c in merged],
    )
    patch.status.update(common.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    ready_flipped = condition_status(previous, "Ready") != (
        "True" if health.state == "ready" else "False"
    )
    stalled_now = health.state == "stalled" and condition_status(previous, "Stalled") != "True"
    if health.reason in announced:
        return
    if stalled_now:
        kopf.warn(body, reason=health.reason, message=health.message)
    elif ready_flipped:
        kopf.info(body, reason=health.reason, message=health.message)
