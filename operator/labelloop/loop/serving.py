"""Which version a PrelabelService serves, and which version a new training round must beat.

The one decision, for the operator (`controllers/prelabelservice.py`, `controllers/
finetunejob.py`) and the local runner (`local/runner.py`) alike. The version asked for
(`choose_version`):

- `autoPromote`, with a promotable job: the newest FineTuneJob of the project that Succeeded
  and passed its promotion gate (a job without a verdict had no gate);
- `autoPromote`, with none yet: what `spec.model` names, as below, except a job that failed
  its gate (`autoPromote` never serves a version its gate refused);
- `model.version` and `model.uri`: that version;
- `model.fineTuneJobRef`: the version that job produced, once it Succeeded (without
  `autoPromote`, naming a job is an explicit choice: its gate is not asked); nothing yet
  while it is missing or unfinished.

`spec.model` is required by the CRD, so `autoPromote` always has a fallback; until that names
something servable there is no version. The operator then waits (`WaitingForModel`); the local
runner serves its zero-shot prelabeler of the base model meanwhile (round 0), which is no
version of the service and so never becomes "previous".

What is asked for is not always what serves: the rollout (`loop.rollout.plan_rollout`) moves
traffic to it step by step, and a version it rolled back stays rolled back while the active
one keeps serving. The version a new round must beat under `promotion.mustImprove` is the
active one (`previous_version`): the job file's `previousVersionDir` is its directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic

from ..api.prelabelservice import PrelabelServiceSpec, PrelabelServiceStatus
from .rollout import RolloutState, Target, VersionState

JSON = dict[str, Any]


@dataclass(frozen=True)
class Choice:
    """The version to serve, or None with the reason there is none yet."""

    target: Target | None
    reason: str


def succeeded_version(job: Mapping[str, Any]) -> Target | None:
    """The version a FineTuneJob produced, once it has Succeeded with an artifact."""
    status = job.get("status") or {}
    version, uri = status.get("modelVersion"), status.get("artifactUri")
    if status.get("phase") != "Succeeded" or not version or not uri:
        return None
    base = ((job.get("spec") or {}).get("baseModel") or {}).get("uri")
    return Target(str(version), str(uri), str(base) if base else None)


def passed_gate(job: Mapping[str, Any]) -> bool:
    """Whether a FineTuneJob's promotion gate passed; one without a verdict had no gate."""
    return bool(((job.get("status") or {}).get("promotion") or {}).get("passed", True))


def newest_promotable(jobs: Iterable[Mapping[str, Any]], project: str) -> Target | None:
    """The newest Succeeded FineTuneJob of `project` whose promotion gate passed.

    A job without a gate verdict passes (it had no gate). Newest is by completion time, then
    by name, so two jobs finishing in the same second still give one answer.
    """
    candidates = []
    for job in jobs:
        ref = (job.get("spec") or {}).get("annotationProjectRef") or {}
        status = job.get("status") or {}
        target = succeeded_version(job)
        if ref.get("name") == project and target is not None and passed_gate(job):
            candidates.append((status.get("completionTime") or "", job["metadata"]["name"], target))
    return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


def choose_version(spec: PrelabelServiceSpec, jobs: Iterable[Mapping[str, Any]]) -> Choice:
    """The version `spec` asks for, given the FineTuneJobs of its namespace (see the table)."""
    jobs = list(jobs)
    if spec.auto_promote:
        newest = newest_promotable(jobs, spec.annotation_project_ref.name)
        if newest is not None:
            return Choice(newest, "the newest FineTuneJob that passed its promotion gate")
    model = spec.model
    if model.version is not None and model.uri is not None:
        base = model.base_model.uri if model.base_model is not None else None
        return Choice(Target(model.version, model.uri, base), "spec.model")
    assert model.fine_tune_job_ref is not None
    name = model.fine_tune_job_ref.name
    job = next((j for j in jobs if (j.get("metadata") or {}).get("name") == name), None)
    if job is None:
        return Choice(None, f"FineTuneJob {name} not found")
    target = succeeded_version(job)
    if target is None:
        return Choice(None, f"waiting for FineTuneJob {name} to succeed")
    if spec.auto_promote and not passed_gate(job):
        return Choice(None, f"no FineTuneJob passed its promotion gate yet ({name} did not)")
    return Choice(target, f"spec.model.fineTuneJobRef {name}")


def previous_version(state: RolloutState) -> Target | None:
    """The version a new round must beat: the active one (a canary, a rolled-back version or
    the local runner's zero-shot server are not it); None while none is active."""
    active = state.get(state.active or "")
    return None if active is None or not active.uri else Target(active.version, active.uri)


def rollout_state_of(status: PrelabelServiceStatus) -> RolloutState:
    """A PrelabelService's rollout state, as its status records it."""
    return RolloutState(
        active=status.active_version,
        previous=status.previous_version,
        canary_step=status.canary_step,
        target=status.target_version,
        versions=tuple(
            VersionState(
                version=v.version,
                uri=v.uri or "",
                state=v.state,
                since=_parse_time(v.since),
                message=v.message,
                base_uri=v.base_model_uri,
            )
            for v in status.versions
        ),
    )


def serving_service(
    project: str, service_ref: str | None, services: Iterable[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The PrelabelService that prelabels `project`: the one its `spec.prelabel.serviceRef`
    names, else the first by name whose `spec.annotationProjectRef` is the project."""
    mine = sorted(
        (
            s
            for s in services
            if ((s.get("spec") or {}).get("annotationProjectRef") or {}).get("name") == project
        ),
        key=lambda s: str(s["metadata"]["name"]),
    )
    named = [s for s in mine if s["metadata"]["name"] == service_ref]
    found = named or mine
    return found[0] if found else None


def previous_of_service(service: Mapping[str, Any] | None) -> Target | None:
    """`previous_version` of a PrelabelService object read from the cluster."""
    if service is None:
        return None
    try:
        status = PrelabelServiceStatus.model_validate(dict(service.get("status") or {}))
    except pydantic.ValidationError:  # a status edited by hand: no version to beat
        return None
    return previous_version(rollout_state_of(status))


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
