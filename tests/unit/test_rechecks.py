"""Waits on time wake their reconcile at the right moment: deadlines, webhook renewals, and
Label Studio's counters, which the poller compares instead of syncing every project."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from labelloop.controllers.annotationproject import label_studio_retry_in
from labelloop.controllers.conditions import Deadline, seconds_left
from labelloop.controllers.label_studio_poll import moved
from labelloop.controllers.training_phase import observe_training
from labelloop.labelstudio.models import ProjectCounts
from labelloop.steps.webhook import HookSecrets

SINCE = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("waited", "left"),
    [(0, 601.0), (599.5, 1.5), (600, 1.0), (600.5, None), (5000, None)],
)
def test_a_wait_is_looked_at_again_just_after_its_deadline(
    waited: float, left: float | None
) -> None:
    deadline = Deadline("spec.x", 600)
    assert seconds_left(deadline, SINCE, SINCE + timedelta(seconds=waited)) == left


@pytest.mark.parametrize(
    ("down", "retry"), [(0, 10.0), (15, 10.0), (60, 30.0), (300, 150.0), (3600, 300.0)]
)
def test_a_label_studio_that_stays_down_is_asked_ever_less_often(down: float, retry: float) -> None:
    assert label_studio_retry_in(down) == retry


def unplaced_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "train-0"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available",
                    "lastTransitionTime": SINCE.isoformat(),
                }
            ],
        },
    }


@pytest.mark.parametrize(("after", "recheck"), [(0, 11.0), (4, 7.0), (11, None)])
def test_pods_waiting_for_a_node_are_looked_at_again_when_the_deadline_passes(
    after: float, recheck: float | None
) -> None:
    observation = observe_training(
        {"metadata": {"name": "train"}, "spec": {}, "status": {}},
        [unplaced_pod()],
        scheduling_deadline_seconds=10,
        now=SINCE + timedelta(seconds=after),
    )
    assert observation.recheck_in == recheck
    assert observation.health.state == ("stalled" if recheck is None else "reconciling")


def test_a_running_job_needs_no_recheck() -> None:
    running = {"metadata": {"name": "train-0"}, "status": {"phase": "Running"}}
    job = {"metadata": {"name": "train"}, "spec": {"completions": 1}, "status": {}}
    assert (
        observe_training(job, [running], scheduling_deadline_seconds=10, now=SINCE).recheck_in
        is None
    )


def test_webhook_secrets_are_renewed_early_in_the_next_window_spread_by_project() -> None:
    secrets = HookSecrets(b"k" * 32, window_seconds=600)
    now = 6000.0 + 42  # 42 s into window 10
    renewals = {
        name: now + secrets.renewal_in("ml", name, now) for name in (f"p{i}" for i in range(50))
    }
    for at in renewals.values():
        assert 6600 <= at < 6900  # the first half of window 11, while window 10's stays valid
    assert len(set(renewals.values())) > 25  # spread, not all at the turn
    assert secrets.renewal_in("ml", "p1", now) == secrets.renewal_in("ml", "p1", now)
    later = now + secrets.renewal_in("ml", "p1", now)
    assert secrets.accepts(secrets.current("ml", "p1", now), "ml", "p1", later)


def counts(project: int, annotations: int = 0, tasks: int = 3) -> ProjectCounts:
    return ProjectCounts(id=project, tasks=tasks, annotations=annotations, skipped=0, predictions=0)


@pytest.mark.parametrize(
    ("before", "now", "woken"),
    [
        ({1: counts(1)}, {1: counts(1)}, set()),
        ({1: counts(1)}, {1: counts(1, annotations=1)}, {1}),
        ({1: counts(1), 2: counts(2)}, {1: counts(1), 2: counts(2, tasks=4)}, {2}),
        ({}, {1: counts(1)}, set()),  # seen first: its pass has just read it
        ({1: counts(1)}, {}, {1}),  # gone from Label Studio: its pass says so
    ],
)
def test_the_poller_wakes_the_projects_whose_counters_moved(
    before: dict[int, ProjectCounts], now: dict[int, ProjectCounts], woken: set[int]
) -> None:
    assert moved(before, now) == woken
