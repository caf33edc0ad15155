"""The rollout policy, step by step in simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from labelloop.api.prelabelservice import Rollout
from labelloop.loop.rollout import (
    Observed,
    Plan,
    RolloutState,
    Target,
    active_replicas_in_canary,
    canary_replicas,
    plan_rollout,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class World:
    """Drives plan_rollout the way a controller does: feed back the state it returns."""

    def __init__(self, rollout: Rollout, replicas: int = 2, history: int = 3) -> None:
        self.rollout, self.replicas, self.history = rollout, replicas, history
        self.state = RolloutState()
        self.ready: dict[str, int] = {}
        self.accuracy: dict[str, float] = {}

    def step(self, version: str, at: float) -> Plan:
        observed = {
            v: Observed(self.ready.get(v, 0), self.accuracy.get(v)) for v in {*self.ready, version}
        }
        plan = plan_rollout(
            rollout=self.rollout,
            replicas=self.replicas,
            history_limit=self.history,
            current=self.state,
            target=Target(version, f"pvc://models/{version}"),
            observed=observed,
            now=T0 + timedelta(seconds=at),
        )
        self.state = plan.state
        return plan

    def serve(self, version: str, at: float) -> Plan:
        """Roll `version` out completely (everything it asks for becomes ready)."""
        plan = self.step(version, at)
        for _ in range(10):
            if plan.state.active == version:
                return plan
            self.ready = dict(plan.replicas)
            at += 3600
            plan = self.step(version, at)
        raise AssertionError(f"{version} never became active: {plan.message}")


@pytest.mark.parametrize(
    ("total", "percent", "expected"),
    [(0, 25, 0), (1, 25, 1), (2, 25, 1), (4, 25, 1), (4, 50, 2), (10, 33, 4), (3, 100, 3)],
)
def test_canary_replicas(total: int, percent: int, expected: int) -> None:
    assert canary_replicas(total, percent) == expected


def test_first_version_takes_all_replicas_then_becomes_active() -> None:
    world = World(Rollout())
    plan = world.step("v1", 0)
    assert (plan.replicas, plan.health, plan.state.active) == ({"v1": 2}, "reconciling", None)
    world.ready = {"v1": 2}
    plan = world.step("v1", 5)
    assert (plan.state.active, plan.health, plan.reason) == ("v1", "ready", "Active")
    assert plan.traffic({"v1": Observed(2)}) == {"v1": 100}


def test_canary_moves_through_steps_only_when_ready_and_time_has_passed() -> None:
    world = World(Rollout(steps=[50, 100], step_seconds=60))
    world.serve("v1", 0)
    world.ready = {"v1": 2}
    t = 10_000
    plan = world.step("v2", t)
    # v1 keeps both replicas until v2's pod is Ready.
    assert plan.replicas == {"v1": 2, "v2": 1} and plan.serve_all_versions
    world.ready = {"v1": 2, "v2": 1}
    plan = world.step("v2", t + 30)
    assert plan.state.canary_step == 0  # ready, but not long enough
    assert plan.replicas == {"v1": 1, "v2": 1}
    assert plan.traffic({"v1": Observed(1), "v2": Observed(1)}) == {"v1": 50, "v2": 50}
    plan = world.step("v2", t + 61)
    assert plan.state.canary_step == 1 and plan.replicas == {"v1": 1, "v2": 2}
    world.ready = {"v1": 1, "v2": 2}
    assert world.step("v2", t + 62).replicas == {"v1": 0, "v2": 2}
    world.ready = {"v2": 2}
    plan = world.step("v2", t + 130)
    assert (plan.state.active, plan.state.previous) == ("v2", "v1")
    assert plan.replicas == {"v1": 0, "v2": 2} and plan.health == "ready"
    assert [reason for reason, _ in plan.events] == ["Promoted"]


@pytest.mark.parametrize(
    ("total", "new", "new_ready", "last_step", "expected"),
    [
        (2, 1, 0, False, 2),  # nothing Ready yet: the active version keeps all
        (2, 1, 1, False, 1),
        (1, 1, 0, False, 1),
        (1, 1, 1, False, 1),  # one replica: both serve until the last step
        (1, 1, 1, True, 0),
        (4, 4, 2, True, 2),  # the last step frees one replica per Ready new one
        (4, 4, 4, True, 0),
        (0, 0, 0, False, 0),
    ],
)
def test_active_replicas_in_canary(
    total: int, new: int, new_ready: int, last_step: bool, expected: int
) -> None:
    assert active_replicas_in_canary(total, new, new_ready, last_step=last_step) == expected


def test_canary_with_one_replica_never_leaves_the_service_empty() -> None:
    world = World(Rollout(steps=[50, 100], step_seconds=10), replicas=1)
    world.serve("v1", 0)
    world.ready = {"v1": 1}
    for at in range(10_000, 10_100, 5):  # v2's pod never becomes Ready
        plan = world.step("v2", at)
        assert plan.replicas["v1"] == 1


def test_rollout_waits_while_too_few_decisions_judge_min_prelabel_accuracy() -> None:
    world = World(Rollout(steps=[50, 100], step_seconds=10, min_prelabel_accuracy=0.6))
    world.serve("v1", 0)
    world.step("v2", 10_000)
    world.ready = {"v1": 1, "v2": 1}
    plan = world.step("v2", 10_500)
    assert (plan.state.canary_step, plan.health, plan.reason) == (0, "reconciling", "Inconclusive")
    assert "too few annotator decisions" in plan.message and plan.replicas == {"v1": 1, "v2": 1}
    world.accuracy = {"v2": 0.7}
    plan = world.step("v2", 10_501)
    assert plan.state.canary_step == 1 and plan.reason == "RollingOut"


def test_version_never_ready_is_rolled_back_and_not_retried() -> None:
    world = World(Rollout(ready_deadline_seconds=600))
    world.serve("v1", 0)
    world.ready = {"v1": 2}
    world.step("v2", 10_000)
    world.ready = {"v1": 1}
    plan = world.step("v2", 10_601)
    assert plan.health == "stalled" and plan.reason == "RolledBack"
    assert "not Ready within readyDeadlineSeconds (600s)" in plan.message
    assert plan.rollback_cause == "NotReady"
    assert plan.replicas == {"v1": 2, "v2": 0}
    again = world.step("v2", 20_000)
    assert again.reason == "RolledBack" and again.replicas == {"v1": 2, "v2": 0}
    assert again.events == [] and again.rollback_cause is None


def test_low_prelabel_accuracy_rolls_back() -> None:
    world = World(Rollout(min_prelabel_accuracy=0.8))
    world.serve("v1", 0)
    world.step("v2", 10_000)
    world.ready, world.accuracy = {"v1": 1, "v2": 1}, {"v2": 0.55}
    plan = world.step("v2", 10_010)
    assert plan.reason == "RolledBack" and "prelabel accuracy 0.55" in plan.message
    assert plan.rollback_cause == "LowPrelabelAccuracy"


def test_blue_green_switches_at_once_when_ready() -> None:
    world = World(Rollout(strategy="BlueGreen"))
    world.serve("v1", 0)
    world.ready = {"v1": 2}
    plan = world.step("v2", 10_000)
    assert plan.replicas == {"v1": 2, "v2": 2} and not plan.serve_all_versions
    assert plan.traffic({"v1": Observed(2), "v2": Observed(2)}) == {"v1": 100, "v2": 0}
    world.ready = {"v1": 2, "v2": 2}
    plan = world.step("v2", 10_001)
    assert plan.state.active == "v2" and plan.replicas == {"v1": 0, "v2": 2}


def test_pointing_back_at_a_kept_version_rolls_back_at_once() -> None:
    world = World(Rollout(steps=[25, 50, 100]))
    world.serve("v1", 0)
    world.serve("v2", 100_000)
    world.ready = {"v2": 2}
    plan = world.step("v1", 200_000)
    assert plan.state.canary_step is None and plan.replicas == {"v1": 2, "v2": 2}
    assert [r for r, _ in plan.events] == ["RollbackStarted"]
    world.ready = {"v1": 2, "v2": 2}
    plan = world.step("v1", 200_001)
    assert (plan.state.active, plan.state.previous) == ("v1", "v2")


def test_history_keeps_only_the_newest_inactive_versions() -> None:
    world = World(Rollout(strategy="BlueGreen"), history=1)
    at = 0
    for version in ("v1", "v2", "v3"):
        plan = world.serve(version, at)
        at += 100_000
    assert [v.version for v in plan.state.versions] == ["v2", "v3"]
    assert "v1" in plan.retired
    assert (plan.state.active, plan.state.previous) == ("v3", "v2")


def test_changing_target_mid_rollout_abandons_the_unfinished_version() -> None:
    world = World(Rollout(steps=[50, 100]))
    world.serve("v1", 0)
    world.step("v2", 10_000)
    plan = world.step("v3", 10_010)
    states = {v.version: v.state for v in plan.state.versions}
    assert states == {"v1": "Active", "v2": "Retired", "v3": "Progressing"}
    assert plan.replicas["v2"] == 0


def test_history_below_its_limit_keeps_every_inactive_version() -> None:
    world = World(Rollout(strategy="BlueGreen", ready_deadline_seconds=15), history=3)
    world.serve("v1", 0)
    world.serve("v2", 100_000)
    world.ready = {"v2": 2}
    world.step("v3", 200_000)
    assert world.step("v3", 200_020).reason == "RolledBack"
    plan = world.serve("v1", 200_030)
    assert plan.retired == []
    assert {v.version: v.state for v in plan.state.versions} == {
        "v1": "Active",
        "v2": "Previous",
        "v3": "RolledBack",
    }
