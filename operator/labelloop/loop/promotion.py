"""Which trained version a PrelabelService with `autoPromote` should serve."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .rollout import Target


def succeeded_version(job: dict[str, Any]) -> Target | None:
    """The version a FineTuneJob produced, once it has Succeeded with an artifact."""
    status = job.get("status") or {}
    version, uri = status.get("modelVersion"), status.get("artifactUri")
    if status.get("phase") != "Succeeded" or not version or not uri:
        return None
    return Target(str(version), str(uri))


def newest_promotable(jobs: Iterable[dict[str, Any]], project: str) -> Target | None:
    """The newest Succeeded FineTuneJob of `project` whose promotion gate passed.

    A job without a gate verdict passes (it had no gate). Newest is by completion time, then
    by name, so two jobs finishing in the same second still give one answer.
    """
    candidates = []
    for job in jobs:
        ref = (job.get("spec") or {}).get("annotationProjectRef") or {}
        status = job.get("status") or {}
        target = succeeded_version(job)
        passed = (status.get("promotion") or {}).get("passed", True)
        if ref.get("name") == project and target is not None and passed:
            candidates.append((status.get("completionTime") or "", job["metadata"]["name"], target))
    return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None
