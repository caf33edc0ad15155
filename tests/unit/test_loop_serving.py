"""autoPromote's choice among a project's FineTuneJobs."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.loop.rollout import Target
from labelloop.loop.serving import newest_promotable


def job(
    name: str,
    project: str = "reviews",
    phase: str = "Succeeded",
    done: str = "2026-12-01T10:00:00Z",
    passed: bool | None = True,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": phase,
        "completionTime": done,
        "modelVersion": f"{name}-v",
        "artifactUri": f"pvc://models/{name}-v",
    }
    if passed is not None:
        status["promotion"] = {"passed": passed}
    return {
        "metadata": {"name": name},
        "spec": {"annotationProjectRef": {"name": project}},
        "status": status,
    }


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([], None),
        ([job("r1")], "r1-v"),
        ([job("r1", done="2026-12-01T10:00:00Z"), job("r2", done="2026-12-01T11:00:00Z")], "r2-v"),
        ([job("r1"), job("r2", done="2026-12-01T11:00:00Z", passed=False)], "r1-v"),
        ([job("r1"), job("r2", done="2026-12-01T11:00:00Z", phase="Running")], "r1-v"),
        ([job("r1"), job("other", project="tweets", done="2026-12-01T12:00:00Z")], "r1-v"),
        ([job("r1", passed=None)], "r1-v"),
        ([job("r1"), job("r2")], "r2-v"),  # same second: the name decides
    ],
)
def test_newest_promotable(jobs: list[dict[str, Any]], expected: str | None) -> None:
    target = newest_promotable(jobs, "reviews")
    assert (target.version if isinstance(target, Target) else None) == expected
