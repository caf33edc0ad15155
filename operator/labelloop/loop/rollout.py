"""Rolling out a model version, and rolling it back: a pure function of state and observations.

Each model version has its own Deployment; traffic follows the versions' ready replicas
behind one stable Service. The operator and the local runner both call `plan_rollout` on
every reconcile with what they observe, and do what the plan says, so the rules live here
once:

- The first version takes all replicas and becomes active once Ready.
- Canary: the new version gets `steps[i]` percent of the replicas, the active one the rest;
  a step is done when the new version is Ready and has served `stepSeconds` there. The active
  version gives up a replica only for a Ready one of the new version, and keeps one until the
  last step, so clients never lose capacity while new pods start (or never start).
- With `minPrelabelAccuracy` set, a step is done only once annotators have judged enough of
  the new version's prelabels; until then the rollout waits at its step (Inconclusive).
- BlueGreen: the new version gets all replicas beside the active one and takes over at once
  when Ready.
- Pointing `spec.model` back at a version still kept (at zero replicas) rolls back at once,
  whatever the strategy.
- A version that is not Ready within `readyDeadlineSeconds` of its step, or whose prelabels
  annotators overturn so often that accuracy falls below `minPrelabelAccuracy`, is rolled
  back, and stays rolled back until a different version is asked for.
- Inactive versions are kept at zero replicas, newest first, up to `revisionHistoryLimit`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from ..api.prelabelservice import Rollout

VersionRole = Literal["Progressing", "Active", "Previous", "Retired", "RolledBack"]
HealthState = Literal["ready", "reconciling", "stalled"]
RollbackCause = Literal["NotReady", "LowPrelabelAccuracy"]


@dataclass(frozen=True)
class VersionState:
    version: str
    uri: str
    state: VersionRole
    since: datetime
    message: str | None = None
    base_uri: str | None = None


@dataclass(frozen=True)
class RolloutState:
    active: str | None = None
    previous: str | None = None
    canary_step: int | None = None
    """Index into the Canary steps while a Canary rollout runs; None otherwise."""
    target: str | None = None
    """The version asked for; kept even when rolled back, so it is not tried again."""
    versions: tuple[VersionState, ...] = ()
    """Oldest first."""

    def get(self, version: str) -> VersionState | None:
        return next((v for v in self.versions if v.version == version), None)


@dataclass(frozen=True)
class Observed:
    """What the cluster (or the local runner) shows for one version."""

    ready_replicas: int = 0
    prelabel_accuracy: float | None = None
    """Share of its prelabels annotators kept unchanged; None until enough were reviewed."""


@dataclass(frozen=True)
class Target:
    version: str
    uri: str
    base_uri: str | None = None
    """The base model the version's adapter belongs to, loaded beside it; None where the
    version's own record of it is reachable (the local runner)."""


@dataclass(frozen=True)
class Plan:
    state: RolloutState
    replicas: dict[str, int]
    """Desired replicas of every kept version."""
    serve_all_versions: bool
    """True during a Canary rollout; otherwise only the active version receives traffic."""
    health: HealthState
    reason: str
    message: str
    retired: list[str] = field(default_factory=list)
    """Versions dropped from history, whose Deployments go."""
    events: list[tuple[str, str]] = field(default_factory=list)
    rollback_cause: RollbackCause | None = None
    """Why this pass rolled the target back, if it did."""

    def traffic(self, observed: Mapping[str, Observed]) -> dict[str, int]:
        """Percent of traffic per version, from ready replicas behind the Service."""
        serving = [
            v.version
            for v in self.state.versions
            if self.serve_all_versions or v.version == self.state.active
        ]
        ready = {
            v: min(observed.get(v, Observed()).ready_replicas, self.replicas.get(v, 0))
            for v in serving
        }
        total = sum(ready.values())
        return {
            v.version: round(100 * ready.get(v.version, 0) / total) if total else 0
            for v in self.state.versions
        }


def canary_replicas(total: int, percent: int) -> int:
    """Replicas of the new version at a step: at least one, so the step can be observed."""
    return min(total, max(1, math.ceil(total * percent / 100))) if total else 0


def active_replicas_in_canary(total: int, new: int, new_ready: int, *, last_step: bool) -> int:
    """The active version's replicas at a canary step.

    It gives up one replica for each Ready replica of the new version, never for one that is
    still starting, so capacity does not dip (a new version that never becomes Ready leaves it
    whole); and it keeps one until the last step, so that a step below 100% still shares the
    traffic even with a single replica.
    """
    if total == 0:
        return 0
    kept = total - min(new_ready, new)
    return kept if last_step else max(kept, 1)


def plan_rollout(
    *,
    rollout: Rollout,
    replicas: int,
    history_limit: int,
    current: RolloutState,
    target: Target,
    observed: Mapping[str, Observed],
    now: datetime,
) -> Plan:
    """The next step towards serving `target`."""
    planner = _Planner(rollout, replicas, history_limit, observed, now)
    return planner.plan(current, target)


@dataclass
class _Planner:
    """One planning pass: the inputs that stay fixed, and the events it emits."""

    rollout: Rollout
    replicas: int
    history_limit: int
    observed: Mapping[str, Observed]
    now: datetime
    events: list[tuple[str, str]] = field(default_factory=list)
    rollback_cause: RollbackCause | None = None

    def plan(self, current: RolloutState, target: Target) -> Plan:
        state = self._adopt_target(current, target)
        version = state.get(target.version)
        assert version is not None
        if version.state == "RolledBack":
            return self._finish(state, "stalled", "RolledBack", version.message or "")
        if version.state == "Active":
            return self._steady(state)
        ready = self.observed.get(target.version, Observed()).ready_replicas
        overdue = self.now - version.since > timedelta(seconds=self.rollout.ready_deadline_seconds)
        not_ready = (
            f"not Ready within readyDeadlineSeconds ({self.rollout.ready_deadline_seconds}s)"
        )

        if state.active is None or state.canary_step is None:
            # First version, BlueGreen, or a rollback: the whole new set, then switch.
            if ready >= self.replicas:
                return self._steady(self._promote(state, target.version))
            if overdue:
                return self._roll_back(state, target.version, not_ready, "NotReady")
            wanted = {target.version: self.replicas}
            if state.active:
                wanted[state.active] = self.replicas
            message = f"starting version {target.version} ({ready}/{self.replicas} ready)"
            return self._plan(
                state,
                wanted,
                serve_all=False,
                health="reconciling",
                reason="RollingOut",
                message=message,
            )

        step = state.canary_step
        new = canary_replicas(self.replicas, self.rollout.steps[step])
        accuracy = self.observed.get(target.version, Observed()).prelabel_accuracy
        if accuracy is not None and accuracy < self.rollout.min_prelabel_accuracy:
            why = (
                f"prelabel accuracy {accuracy:.2f} is below minPrelabelAccuracy "
                f"{self.rollout.min_prelabel_accuracy:.2f}"
            )
            return self._roll_back(state, target.version, why, "LowPrelabelAccuracy")
        judged = accuracy is not None or self.rollout.min_prelabel_accuracy == 0
        reason = "RollingOut"
        if ready < new:
            if overdue:
                return self._roll_back(state, target.version, not_ready, "NotReady")
        elif self.now - version.since < timedelta(seconds=self.rollout.step_seconds):
            pass
        elif not judged:
            reason = "Inconclusive"
        elif step == len(self.rollout.steps) - 1:
            return self._steady(self._promote(state, target.version))
        else:
            step += 1
            state = replace(
                _with_version(state, replace(version, since=self.now)), canary_step=step
            )
            new = canary_replicas(self.replicas, self.rollout.steps[step])
            share = self.rollout.steps[step]
            self.events.append(("CanaryStep", f"version {target.version} at {share}% of replicas"))
        assert state.active is not None
        last = step == len(self.rollout.steps) - 1
        wanted = {
            target.version: new,
            state.active: active_replicas_in_canary(self.replicas, new, ready, last_step=last),
        }
        at_step = f"canary step {step + 1}/{len(self.rollout.steps)}"
        if reason == "Inconclusive":
            message = (
                f"version {target.version} waits at {at_step}: too few annotator decisions on "
                f"its prelabels to judge minPrelabelAccuracy "
                f"{self.rollout.min_prelabel_accuracy:.2f}"
            )
        else:
            message = (
                f"version {target.version} at {at_step} "
                f"({self.rollout.steps[step]}% of replicas, {ready}/{new} ready)"
            )
        return self._plan(
            state, wanted, serve_all=True, health="reconciling", reason=reason, message=message
        )

    def _adopt_target(self, state: RolloutState, target: Target) -> RolloutState:
        for v in state.versions:
            if v.state == "Progressing" and v.version != target.version:
                state = _with_version(state, replace(v, state="Retired", since=self.now))
                self.events.append(("RolloutAbandoned", f"version {v.version} is no longer wanted"))
        state = replace(state, target=target.version)
        known = state.get(target.version)
        if known is None:
            fresh = VersionState(
                target.version, target.uri, "Progressing", self.now, base_uri=target.base_uri
            )
            step = 0 if self.rollout.strategy == "Canary" and state.active else None
            self.events.append(("RolloutStarted", f"rolling out version {target.version}"))
            return replace(_with_version(state, fresh), canary_step=step)
        if known.state in ("Previous", "Retired"):
            # An explicit rollback to a kept version: no canary steps.
            self.events.append(("RollbackStarted", f"rolling back to version {target.version}"))
            again = replace(known, state="Progressing", since=self.now, message=None)
            return replace(_with_version(state, again), canary_step=None)
        return state

    def _set_role(self, state: RolloutState, version: str, role: VersionRole) -> RolloutState:
        current = state.get(version)
        assert current is not None
        return _with_version(state, replace(current, state=role, since=self.now, message=None))

    def _promote(self, state: RolloutState, version: str) -> RolloutState:
        for v in state.versions:
            if v.state == "Previous":
                state = self._set_role(state, v.version, "Retired")
        previous = state.active
        if previous is not None:
            state = self._set_role(state, previous, "Previous")
        state = self._set_role(state, version, "Active")
        kept = f", {previous} kept for rollback" if previous else ""
        self.events.append(("Promoted", f"version {version} is active{kept}"))
        return replace(state, active=version, previous=previous, canary_step=None)

    def _roll_back(self, state: RolloutState, version: str, why: str, cause: RollbackCause) -> Plan:
        current = state.get(version)
        assert current is not None
        fallback = f"; {state.active} keeps serving" if state.active else ""
        message = f"version {version} rolled back: {why}{fallback}"
        rolled_back = replace(current, state="RolledBack", since=self.now, message=message)
        state = replace(_with_version(state, rolled_back), canary_step=None)
        self.events.append(("RolledBack", message))
        self.rollback_cause = cause
        return self._finish(state, "stalled", "RolledBack", message)

    def _steady(self, state: RolloutState) -> Plan:
        assert state.active is not None
        ready = self.observed.get(state.active, Observed()).ready_replicas
        if ready >= self.replicas:
            return self._finish(
                state, "ready", "Active", f"version {state.active} serves all traffic"
            )
        message = f"version {state.active}: {ready}/{self.replicas} replicas ready"
        return self._finish(state, "reconciling", "Scaling", message)

    def _finish(self, state: RolloutState, health: HealthState, reason: str, message: str) -> Plan:
        wanted = {state.active: self.replicas} if state.active else {}
        return self._plan(
            state, wanted, serve_all=False, health=health, reason=reason, message=message
        )

    def _plan(
        self,
        state: RolloutState,
        wanted: Mapping[str, int],
        *,
        serve_all: bool,
        health: HealthState,
        reason: str,
        message: str,
    ) -> Plan:
        in_use = {v for v, n in wanted.items() if n > 0}
        in_use |= {v for v in (state.active, state.target) if v is not None}
        inactive = [v for v in state.versions if v.version not in in_use]
        kept = inactive[max(0, len(inactive) - self.history_limit) :] if self.history_limit else []
        retired = [v.version for v in inactive if v not in kept]
        state = replace(
            state,
            versions=tuple(v for v in state.versions if v.version not in retired),
            previous=None if state.previous in retired else state.previous,
        )
        replicas = {v.version: wanted.get(v.version, 0) for v in state.versions}
        return Plan(
            state,
            replicas,
            serve_all,
            health,
            reason,
            message,
            retired,
            self.events,
            self.rollback_cause,
        )


def _with_version(state: RolloutState, version: VersionState) -> RolloutState:
    others = tuple(v for v in state.versions if v.version != version.version)
    return replace(state, versions=(*others, version))
