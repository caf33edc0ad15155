"""When a training round starts, its FineTuneJob's name, and the manifest it gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from labelloop.api import parse_manifest
from labelloop.api.finetunejob import FineTuneJobSpec, FineTuneJobTemplate
from labelloop.loop.trigger import RoundState, decide, round_job_name
from labelloop.resources.common import Owner
from labelloop.resources.rounds import PROJECT_LABEL, ROUND_LABEL, build_round_job, round_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
THRESHOLD = 5
NEVER = RoundState(rounds=0, cutoff=0, last_started=None)


def started(seconds_ago: float) -> RoundState:
    return RoundState(rounds=1, cutoff=10, last_started=NOW - timedelta(seconds=seconds_ago))


@pytest.mark.parametrize(
    ("since", "interval", "state", "start", "reason", "wait"),
    [
        (0, 0, NEVER, False, "0/5 new annotations", None),
        (4, 0, NEVER, False, "4/5 new annotations", None),
        (5, 0, NEVER, True, "5 new annotations reached 5", None),
        (9, 3600, NEVER, True, "9 new annotations", None),  # the first round never waits
        # Held back by time alone: the caller must look again by then (no event will come).
        (5, 3600, started(60), False, "allows the next round in 3541s", 3541),
        (5, 3600, started(3600), True, "reached", None),
        (5, 0, started(1), True, "reached", None),
        (4, 0, started(10_000), False, "4/5", None),
    ],
)
def test_decide(
    *, since: int, interval: int, state: RoundState, start: bool, reason: str, wait: int | None
) -> None:
    decision = decide(since, THRESHOLD, interval, state, NOW)
    assert decision.start is start
    assert reason in decision.reason
    assert decision.wait_seconds == wait


@pytest.mark.parametrize(
    ("project", "round_", "expected"),
    [
        ("reviews", 1, "reviews-r1"),
        ("reviews", 12, "reviews-r12"),
        ("p" * 63, 3, round_job_name("p" * 63, 3)),
    ],
)
def test_round_names_are_deterministic_dns_labels(project: str, round_: int, expected: str) -> None:
    name = round_job_name(project, round_)
    assert name == expected == round_job_name(project, round_)
    assert len(name) <= 63 and name.endswith(f"-r{round_}")


def test_long_project_names_keep_rounds_apart() -> None:
    assert round_job_name("p" * 63, 1) != round_job_name("p" * 63, 2)
    assert round_job_name("p" * 63, 1) != round_job_name("p" * 62 + "q", 1)


TEMPLATE = FineTuneJobTemplate.model_validate(
    {
        "baseModel": {"uri": "pvc://models/base/distilbert"},
        "output": {"uri": "pvc://models/reviews"},
        "hyperparameters": {"epochs": 2},
    }
)


def test_round_job_is_a_valid_owned_fine_tune_job() -> None:
    owner = Owner("AnnotationProject", "reviews", "team", "uid-1")
    job = build_round_job(owner, "reviews-r2", 2, 41, TEMPLATE)
    spec = parse_manifest(job).spec
    assert isinstance(spec, FineTuneJobSpec)
    assert spec.annotation_project_ref is not None
    assert spec.annotation_project_ref.model_dump() == {
        "name": "reviews",
        "round": 2,
        "last_annotation_id": 41,
    }
    assert spec.hyperparameters.epochs == 2
    assert job["metadata"]["ownerReferences"] == [owner.reference()]
    assert job["metadata"]["labels"][PROJECT_LABEL] == "reviews"
    assert job["metadata"]["labels"][ROUND_LABEL] == "2"
    assert round_of(job) == (2, 41)


def test_jobs_not_made_for_a_round_have_none() -> None:
    assert round_of({"spec": {"dataset": {"uri": "pvc://d/x.jsonl"}}}) is None
    assert round_of({"spec": {"annotationProjectRef": {"name": "reviews"}}}) is None
