"""`loop.serving`: the version a PrelabelService serves and the version a round must beat,
chosen alike by the operator and by the local runner (a table of every case)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from labelloop.api.annotationproject import AnnotationProjectSpec
from labelloop.api.prelabelservice import PrelabelServiceSpec
from labelloop.controllers.context import OperatorContext
from labelloop.local.manifests import LocalManifests, Project
from labelloop.local.runner import LocalRunner, RoundRecord, RunnerOptions
from labelloop.local.volumes import Volumes
from labelloop.loop.rollout import (
    Observed,
    RolloutState,
    Target,
    VersionRole,
    VersionState,
    plan_rollout,
)
from labelloop.loop.serving import (
    choose_version,
    newest_promotable,
    previous_of_service,
    previous_version,
    serving_service,
)
from labelloop.resources.common import Owner
from manifest_cases import LABEL_CONFIG


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


# --- the operator and the local runner choose alike --------------------------------------

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)


@dataclass(frozen=True)
class Round:
    """One finished (or running) FineTuneJob of project `reviews`."""

    number: int
    phase: str = "Succeeded"
    passed: bool | None = True

    @property
    def name(self) -> str:
        return f"reviews-r{self.number}"

    @property
    def version(self) -> str:
        return f"{self.name}-abcd1234"

    @property
    def uri(self) -> str:
        return f"pvc://models/reviews/{self.version}"

    @property
    def done(self) -> str:
        return f"2026-12-01T1{self.number}:00:00Z"

    def on_cluster(self) -> dict[str, Any]:
        """The FineTuneJob as the operator lists it."""
        status: dict[str, Any] = {"phase": self.phase}
        if self.phase == "Succeeded":
            status |= {
                "completionTime": self.done,
                "modelVersion": self.version,
                "artifactUri": self.uri,
            }
        if self.passed is not None:
            status["promotion"] = {"passed": self.passed, "reason": "test"}
        return {
            "apiVersion": "labelloop.io/v1alpha1",
            "kind": "FineTuneJob",
            "metadata": {"name": self.name, "namespace": "ml"},
            "spec": {"annotationProjectRef": {"name": "reviews", "round": self.number}},
            "status": status,
        }

    def on_this_machine(self) -> RoundRecord:
        """The round as the local runner records it."""
        succeeded = self.phase == "Succeeded"
        return RoundRecord(
            round=self.number,
            job=self.name,
            cutoff=self.number * 10,
            started=EARLIER.isoformat(),
            phase=self.phase,
            model_version=self.version if succeeded else None,
            artifact_uri=self.uri if succeeded else None,
            completion_time=self.done if succeeded else None,
            promotion=None if self.passed is None else {"passed": self.passed, "reason": "test"},
        )


def service(*, auto: bool, model: dict[str, Any]) -> PrelabelServiceSpec:
    return PrelabelServiceSpec.model_validate(
        {"annotationProjectRef": {"name": "reviews"}, "model": model, "autoPromote": auto}
    )


PINNED = {"version": "v0", "uri": "pvc://models/reviews/v0"}
R1 = {"fineTuneJobRef": {"name": "reviews-r1"}}


def version(name: str, uri: str, role: VersionRole) -> VersionState:
    return VersionState(name, uri, role, EARLIER)


R1_ACTIVE = RolloutState(
    active=Round(1).version,
    target=Round(1).version,
    versions=(version(Round(1).version, Round(1).uri, "Active"),),
)
R2_ROLLED_BACK = RolloutState(
    active=Round(1).version,
    target=Round(2).version,
    versions=(
        version(Round(1).version, Round(1).uri, "Active"),
        version(Round(2).version, Round(2).uri, "RolledBack"),
    ),
)
V0_PREVIOUS = RolloutState(
    active=Round(1).version,
    previous="v0",
    target=Round(1).version,
    versions=(
        version("v0", PINNED["uri"], "Previous"),
        version(Round(1).version, Round(1).uri, "Active"),
    ),
)


@pytest.mark.parametrize(
    ("spec", "rounds", "current", "asked", "serving"),
    [
        pytest.param(
            service(auto=True, model=R1),
            [Round(1), Round(2), Round(3, passed=False)],
            RolloutState(),
            Round(2).version,
            Round(2).version,
            id="autoPromote: the newest job that passed its gate",
        ),
        pytest.param(
            service(auto=True, model=PINNED),
            [Round(1, passed=False)],
            RolloutState(),
            "v0",
            "v0",
            id="autoPromote, none promotable: spec.model's version",
        ),
        pytest.param(
            service(auto=True, model=R1),
            [Round(1, passed=False)],
            RolloutState(),
            None,
            None,
            id="autoPromote, none promotable: not spec.model's job that failed its gate",
        ),
        pytest.param(
            service(auto=True, model=R1),
            [Round(1, passed=None)],
            RolloutState(),
            Round(1).version,
            Round(1).version,
            id="autoPromote: spec.model's job without a gate",
        ),
        pytest.param(
            service(auto=True, model=R1),
            [],
            RolloutState(),
            None,
            None,
            id="autoPromote, no job yet: nothing (the runner's zero-shot serves round 0)",
        ),
        pytest.param(
            service(auto=False, model=PINNED),
            [Round(1), Round(2)],
            RolloutState(),
            "v0",
            "v0",
            id="pinned version and uri: promotable jobs are ignored",
        ),
        pytest.param(
            service(auto=False, model=R1),
            [Round(1, phase="Running", passed=None)],
            RolloutState(),
            None,
            None,
            id="pinned job, still running: nothing yet",
        ),
        pytest.param(
            service(auto=False, model=R1),
            [Round(1, passed=False), Round(2)],
            RolloutState(),
            Round(1).version,
            Round(1).version,
            id="pinned job: its version",
        ),
        pytest.param(
            service(auto=True, model=R1),
            [Round(1), Round(2)],
            R2_ROLLED_BACK,
            Round(2).version,
            Round(1).version,
            id="rolled-back version: still asked for, the active one keeps serving",
        ),
        pytest.param(
            service(auto=False, model=PINNED),
            [Round(1)],
            V0_PREVIOUS,
            "v0",
            "v0",
            id="pinned back to a kept version: rolled back at once",
        ),
        pytest.param(
            service(auto=True, model=R1),
            [Round(1), Round(2, passed=False)],
            R1_ACTIVE,
            Round(1).version,
            Round(1).version,
            id="a worse round (gate failed) does not replace the serving version",
        ),
    ],
)
def test_the_operator_and_the_local_runner_serve_the_same_version(
    spec: PrelabelServiceSpec,
    rounds: list[Round],
    current: RolloutState,
    asked: str | None,
    *,
    serving: str | None,
    tmp_path: Path,
) -> None:
    on_cluster = _operator_target(spec, [r.on_cluster() for r in rounds])
    on_this_machine = _runner_target(spec, [r.on_this_machine() for r in rounds], tmp_path)
    assert on_cluster == on_this_machine
    assert (on_cluster.version if on_cluster else None) == asked
    assert _serves(spec, current, on_cluster) == serving


@pytest.mark.parametrize(
    ("state", "previous"),
    [
        (RolloutState(), None),
        (R1_ACTIVE, Target(Round(1).version, Round(1).uri)),
        (R2_ROLLED_BACK, Target(Round(1).version, Round(1).uri)),
        (V0_PREVIOUS, Target(Round(1).version, Round(1).uri)),
    ],
)
def test_the_version_to_beat_is_the_active_one_on_both(
    state: RolloutState, previous: Target | None
) -> None:
    assert previous_version(state) == previous
    assert previous_of_service({"status": _status_of(state)}) == previous


def _status_of(state: RolloutState) -> dict[str, Any]:
    """A PrelabelService's status as the operator writes it."""
    return {
        "activeVersion": state.active,
        "previousVersion": state.previous,
        "targetVersion": state.target,
        "versions": [
            {"version": v.version, "uri": v.uri, "state": v.state, "since": "2026-12-01T11:00:00Z"}
            for v in state.versions
        ],
    }


def test_the_project_s_service_is_the_one_it_names_else_the_first_pointing_at_it() -> None:
    def pls(name: str, project: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"annotationProjectRef": {"name": project}}}

    services = [pls("b", "reviews"), pls("a", "reviews"), pls("c", "tweets")]
    assert serving_service("reviews", "b", services) == services[0]
    assert serving_service("reviews", None, services) == services[1]
    assert serving_service("reviews", "c", services) == services[1]
    assert serving_service("news", None, services) is None


class _Kube:
    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs

    def list(
        self, api_version: str, kind: str, namespace: str, selector: dict[str, str]
    ) -> list[dict[str, Any]]:
        assert (kind, namespace, selector) == ("FineTuneJob", "ml", {})
        return self.jobs


def _operator_target(spec: PrelabelServiceSpec, jobs: list[dict[str, Any]]) -> Target | None:
    from labelloop.controllers import prelabelservice

    context = cast(OperatorContext, SimpleNamespace(kube=_Kube(jobs)))
    owner = Owner("PrelabelService", "pl", "ml", "uid-1")
    try:
        return prelabelservice._target(context, owner, spec)
    except prelabelservice._NoTarget:
        return None


def _runner_target(
    spec: PrelabelServiceSpec, rounds: list[RoundRecord], tmp: Path
) -> Target | None:
    project_spec = AnnotationProjectSpec.model_validate(
        {
            "labelStudio": {"external": {"url": "http://ls.example.com"}},
            "credentialsSecretRef": {"name": "token"},
            "project": {"title": "reviews", "labelConfig": LABEL_CONFIG},
            "prelabel": {"serviceRef": {"name": "pl"}},
        }
    )
    project = Project("reviews", "ml", project_spec, "pl", spec)
    options = RunnerOptions(work_dir=tmp, volumes=Volumes(tmp / "volumes"))
    runner = LocalRunner(project, LocalManifests(), options, say=lambda _: None)
    runner.state.rounds = rounds
    return runner._target()


def _serves(spec: PrelabelServiceSpec, current: RolloutState, target: Target | None) -> str | None:
    """The version serving all traffic once the rollout toward `target` settles."""
    if target is None:
        return current.active
    state = current
    for _ in range(3):  # each pass with every version's replicas Ready
        ready = {v.version: Observed(ready_replicas=1) for v in (*state.versions,)}
        ready[target.version] = Observed(ready_replicas=1)
        plan = plan_rollout(
            rollout=spec.rollout.model_copy(update={"step_seconds": 0}),
            replicas=1,
            history_limit=3,
            current=state,
            target=target,
            observed=ready,
            now=NOW,
        )
        state = plan.state
    return state.active


@pytest.mark.parametrize(
    ("model", "jobs", "base"),
    [
        # A FineTuneJob's version is served with the base model it was trained from.
        (
            {"fineTuneJobRef": {"name": "r1"}},
            [{**job("r1"), "spec": {"baseModel": {"uri": "pvc://base-models/minilm"}}}],
            "pvc://base-models/minilm",
        ),
        (
            {"version": "v1", "uri": "pvc://models/v1", "baseModel": {"uri": "pvc://base/m"}},
            [],
            "pvc://base/m",
        ),
        ({"version": "v1", "uri": "pvc://models/v1"}, [], None),
    ],
)
def test_the_chosen_version_carries_its_base_model(
    model: dict[str, Any], jobs: list[dict[str, Any]], base: str | None
) -> None:
    spec = PrelabelServiceSpec.model_validate(
        {"annotationProjectRef": {"name": "reviews"}, "model": model}
    )
    chosen = choose_version(spec, jobs).target
    assert chosen is not None and chosen.base_uri == base
