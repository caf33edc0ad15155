"""The decisions of leader election, as pure functions of the Lease and this candidate's clock.

A Lease expires on the candidate's own monotonic clock, never by comparing the Lease's
`renewTime` with local time: the candidate notes when it first saw the Lease's current
version (its resourceVersion, new with every write) and counts the Lease as expired once that
version has stood unchanged for the holder's `leaseDurationSeconds`. The clocks of different
machines never meet, so a skewed clock cannot make two leaders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

DEFAULT_LEASE_NAME = "labelloop-operator"
# Between the pod name and the random suffix of an identity; pod names never contain one.
IDENTITY_SEPARATOR = "_"


@dataclass(frozen=True)
class Timing:
    """How soon a standby takes over, and how soon a leader that cannot renew gives up."""

    lease_duration: int = 15
    """Seconds a Lease version must stand unrenewed before a standby takes it over (the
    Lease's `leaseDurationSeconds`, whole seconds)."""
    renew_deadline: float = 10.0
    """Seconds the leader keeps acting without a successful renewal. Shorter than
    `lease_duration`: the leader has stopped before any standby may start, and the
    difference is the margin for its exit."""
    retry_period: float = 2.0
    """Seconds between two attempts: of a standby to acquire, of the leader to renew."""

    def __post_init__(self) -> None:
        if self.retry_period <= 0:
            raise ValueError(f"retry_period must be positive, got {self.retry_period:g}")
        if self.renew_deadline <= self.retry_period:
            raise ValueError(
                f"renew_deadline ({self.renew_deadline:g}s) must be longer than retry_period "
                f"({self.retry_period:g}s), so that the leader can retry a failed renewal"
            )
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(
                f"lease_duration ({self.lease_duration}s) must be longer than renew_deadline "
                f"({self.renew_deadline:g}s), so that a leader that cannot renew has stopped "
                "before a standby takes over"
            )


@dataclass(frozen=True)
class Election:
    """Which Lease the operator's replicas contend for, as whom, and how fast."""

    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    timing: Timing = field(default_factory=Timing)
    service: str | None = None
    """A Service without a selector, in `namespace`, that the leader routes to itself
    (`leader.route`)."""
    pod_ip: str | None = None
    """This replica's pod address, for `service`."""

    def __post_init__(self) -> None:
        if self.service and not self.pod_ip:
            raise ValueError(
                f"routing Service {self.service} to the leader needs this pod's address ($POD_IP)"
            )


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease that election reads."""

    version: str
    """`metadata.resourceVersion`: new with every write to the Lease."""
    holder: str = ""
    """`spec.holderIdentity`; empty when released."""
    duration: int | None = None
    """`spec.leaseDurationSeconds`, as the holder declared it."""
    acquired: datetime | None = None
    """`spec.acquireTime`: when the holder took it."""
    transitions: int = 0
    """`spec.leaseTransitions`: how many times the holder changed."""


@dataclass(frozen=True)
class Sighting:
    """A Lease version as this candidate saw it, and when (its monotonic clock) it first did."""

    record: LeaseRecord
    since: float


class Move(Enum):
    CREATE = "create"
    """There is no Lease: create it, holding it."""
    RENEW = "renew"
    """This candidate holds it: renew it."""
    TAKE_OVER = "take over"
    """Released, or its holder let it expire: take it."""
    WAIT = "wait"
    """Another candidate holds it and renews it: stay a standby."""
    STEP_DOWN = "step down"
    """This candidate was leading and the Lease names another holder, or is gone: stop acting."""


def sight(previous: Sighting | None, record: LeaseRecord | None, now: float) -> Sighting | None:
    """What the candidate knows after reading `record` at `now`: the time it first saw a
    version stays as long as the version does."""
    if record is None:
        return None
    if previous is not None and previous.record.version == record.version:
        return previous
    return Sighting(record, now)


def next_move(
    sighting: Sighting | None, me: str, now: float, *, leading: bool, lease_duration: int
) -> Move:
    """What candidate `me` does next, given the Lease as last sighted.

    `lease_duration` counts only for a Lease whose holder declared no duration.
    """
    if sighting is None:
        return Move.STEP_DOWN if leading else Move.CREATE
    record = sighting.record
    if record.holder == me:
        return Move.RENEW
    if leading:
        return Move.STEP_DOWN
    expired = now - sighting.since >= (record.duration or lease_duration)
    return Move.TAKE_OVER if not record.holder or expired else Move.WAIT


def renewal_overdue(last_renewed: float, now: float, renew_deadline: float) -> bool:
    """Whether a leader whose last successful renewal began at `last_renewed` must stop."""
    return now - last_renewed >= renew_deadline


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claimed(
    record: LeaseRecord | None, me: str, now: datetime, lease_duration: int
) -> dict[str, Any]:
    """The Lease spec that makes `me` its holder. A renewal keeps the acquire time and the
    transition count; taking over counts one more transition; creating starts at none."""
    renewing = record is not None and record.holder == me
    acquired = record.acquired if record is not None and renewing else None
    transitions = 0 if record is None else record.transitions + (0 if renewing else 1)
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": lease_duration,
        "acquireTime": micro_time(acquired or now),
        "renewTime": micro_time(now),
        "leaseTransitions": transitions,
    }


def released(record: LeaseRecord, now: datetime) -> dict[str, Any]:
    """The Lease spec of a leader stepping down cleanly: no holder and a one-second duration,
    so that a standby (of labelloop's, or client-go's) takes it at its next attempt."""
    return {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "acquireTime": micro_time(now),
        "renewTime": micro_time(now),
        "leaseTransitions": record.transitions,
    }


def identity(pod_name: str, suffix: str) -> str:
    """A candidate's identity: its pod name, then a suffix unique to this process (a restarted
    container in the same pod is a new candidate)."""
    return f"{pod_name}{IDENTITY_SEPARATOR}{suffix}"


def pod_of(holder: str) -> str:
    """The pod name in a holder identity (`kubectl delete pod` it to kill the leader)."""
    pod, separator, _suffix = holder.rpartition(IDENTITY_SEPARATOR)
    return pod if separator else holder
