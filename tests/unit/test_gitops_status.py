"""Every state the loop passes through, as GitOps tools read it, with their real engines: kstatus
(sigs.k8s.io/cli-utils), Flux's CEL health checks (the chart's `flux/health-check-exprs.yaml`,
evaluated by Flux's own reader) and Argo CD's health check (the chart's `argocd/health.lua`).

The objects carry the statuses the operator writes: each state's health comes from the
operator's own decisions (`observe_training`, `plan_rollout`, `stalled_past`), becomes
conditions through `Health.updates` and `merge_conditions`, and is serialised through the
kind's status model, as `controllers.reporting.report` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_health import ARGOCD, FLUX_HEALTH_CHECKS, argocd_health, build_kstatus, kstatus
from labelloop.api import API_VERSION, KINDS, Condition
from labelloop.api.annotationproject import AnnotationProjectStatus
from labelloop.api.base import CommonStatus
from labelloop.api.finetunejob import FineTuneJobStatus
from labelloop.api.prelabelservice import PrelabelServiceStatus, Rollout
from labelloop.controllers.conditions import (
    ConditionUpdate,
    Deadline,
    Health,
    merge_conditions,
    stalled_past,
)
from labelloop.controllers.training_phase import COMPLETION_INDEX, observe_training
from labelloop.loop.rollout import Observed, RolloutState, Target, plan_rollout

GENERATION = 4
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WRITTEN_AT = "2026-12-01T12:00:00Z"


# What (kstatus, Flux, Argo CD) say of a state.
WAITING = ("InProgress", "InProgress", "Progressing")
QUEUED = ("InProgress", "InProgress", "Suspended")
DONE = ("Current", "Current", "Healthy")
STALLED = ("Failed", "Failed", "Degraded")


@pytest.fixture(scope="module", autouse=True)
def _kstatus_built() -> None:
    build_kstatus()


def written(
    kind: str, health: Health, status: CommonStatus, extra: Iterable[ConditionUpdate] = ()
) -> dict[str, Any]:
    """An object of `kind` with the status the operator writes for `health`."""
    conditions = merge_conditions(None, [*health.updates(), *extra], GENERATION, WRITTEN_AT)
    full = status.model_copy(
        update={
            "observed_generation": GENERATION,
            "conditions": [Condition.model_validate(c) for c in conditions],
        }
    )
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": "sample", "namespace": "ml", "generation": GENERATION},
        "status": full.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


# --- FineTuneJob: the Job and pods the operator reads, through observe_training ---------------


def job(*conditions: str, suspend: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"kueue.x-k8s.io/queue-name": "gpu-team"} if suspend else {}},
        "spec": {"completions": 1, "suspend": suspend},
        "status": {
            "startTime": WRITTEN_AT,
            "conditions": [{"type": c, "status": "True", "reason": c} for c in conditions],
        },
    }


def pod(phase: str, **terminated: Any) -> dict[str, Any]:
    state = {"terminated": terminated} if terminated else {"running": {}}
    return {
        "metadata": {"name": "sample-0", "annotations": {COMPLETION_INDEX: "0"}},
        "status": {"phase": phase, "containerStatuses": [{"name": "trainer", "state": state}]},
    }


def unplaced() -> dict[str, Any]:
    scheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/5 nodes are available: 5 node(s) didn't match Pod's node affinity.",
        "lastTransitionTime": WRITTEN_AT,
    }
    return {
        "metadata": {"name": "sample-0"},
        "status": {"phase": "Pending", "conditions": [scheduled]},
    }


RESULT = json.dumps({"modelVersion": "sample-r1-1a2b3c4d", "metrics": {"f1": 0.8}})


def training(
    job_: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    after: int = 0,
    missing: Iterable[str] = (),
) -> dict[str, Any]:
    seen = observe_training(
        job_,
        pods,
        scheduling_deadline_seconds=600,
        now=T0 + timedelta(seconds=after),
        missing_claims=list(missing),
    )
    return written("FineTuneJob", seen.health, FineTuneJobStatus(phase=seen.phase), seen.extra)


# --- AnnotationProject: the healths its controller concludes -----------------------------------

REFUSED = "cannot reach Label Studio at http://127.0.0.1:9: connection refused"


def project(health: Health, extra: Iterable[ConditionUpdate] = ()) -> dict[str, Any]:
    return written("AnnotationProject", health, AnnotationProjectStatus(), extra)


def outage(after: int) -> dict[str, Any]:
    deadline = Deadline("spec.labelStudio.connectionDeadlineSeconds", 600)
    waiting = Health("reconciling", "LabelStudioUnreachable", REFUSED)
    down = ConditionUpdate("LabelStudioReachable", "False", "LabelStudioUnreachable", REFUSED)
    return project(stalled_past(deadline, waiting, T0, T0 + timedelta(seconds=after)), [down])


# --- PrelabelService: a rollout driven through plan_rollout -------------------------------------


def rollout_states() -> Iterator[tuple[str, dict[str, Any], tuple[str, str, str]]]:
    """A first version, then a canary that waits for annotators and is rolled back."""
    rollout = Rollout(steps=[50, 100], step_seconds=60, min_prelabel_accuracy=0.8)
    state = RolloutState()

    def step(version: str, at: int, **observed: Observed) -> dict[str, Any]:
        nonlocal state
        plan = plan_rollout(
            rollout=rollout,
            replicas=2,
            history_limit=3,
            current=state,
            target=Target(version, f"pvc://models/{version}"),
            observed=observed,
            now=T0 + timedelta(seconds=at),
        )
        state = plan.state
        status = PrelabelServiceStatus(active_version=state.active, target_version=state.target)
        return written("PrelabelService", Health(plan.health, plan.reason, plan.message), status)

    yield "PrelabelService: first version starting", step("v1", 0), WAITING
    yield "PrelabelService: serving", step("v1", 10, v1=Observed(2)), DONE
    yield "PrelabelService: canary at its first step", step("v2", 20, v1=Observed(2)), WAITING
    inconclusive = step("v2", 100, v1=Observed(2), v2=Observed(1))
    yield "PrelabelService: canary waiting for annotators (Inconclusive)", inconclusive, WAITING
    rolled_back = step("v2", 110, v1=Observed(2), v2=Observed(1, prelabel_accuracy=0.5))
    yield "PrelabelService: canary rolled back", rolled_back, STALLED


def fresh() -> dict[str, Any]:
    """Just applied: the operator has written no status yet."""
    return {
        "apiVersion": API_VERSION,
        "kind": "FineTuneJob",
        "metadata": {"name": "sample", "namespace": "ml", "generation": 1},
        "spec": {},
    }


def spec_changed() -> dict[str, Any]:
    """Ready once, then a spec change the operator has not reconciled yet."""
    obj = project(Health("ready", "ProjectSynced", "project 7 in sync"))
    obj["metadata"]["generation"] = GENERATION + 1
    return obj


STATES: list[tuple[str, dict[str, Any], tuple[str, str, str]]] = [
    ("FineTuneJob: creating its Job", training(None, []), WAITING),
    ("FineTuneJob: queued in Kueue", training(job(suspend=True), []), QUEUED),
    ("FineTuneJob: pods waiting for a node", training(job(), [unplaced()], after=60), WAITING),
    ("FineTuneJob: running", training(job(), [pod("Running")]), WAITING),
    (
        "FineTuneJob: succeeded",
        training(job("Complete"), [pod("Succeeded", exitCode=0, message=RESULT)]),
        DONE,
    ),
    ("FineTuneJob: failed", training(job("Failed"), [pod("Failed", exitCode=1)]), STALLED),
    (
        "FineTuneJob: stalled, no node past the deadline",
        training(job(), [unplaced()], after=601),
        STALLED,
    ),
    (
        "FineTuneJob: stalled, claim missing past the deadline",
        training(job(), [unplaced()], after=601, missing=["models"]),
        STALLED,
    ),
    (
        "FineTuneJob: placed after the stall, running",
        training(job(), [pod("Running")], after=5000),
        WAITING,
    ),
    (
        "AnnotationProject: managed server starting",
        project(Health("reconciling", "ServerStarting", "Label Studio starting (0/1 ready)")),
        WAITING,
    ),
    (
        "AnnotationProject: in sync",
        project(Health("ready", "ProjectSynced", "project 7 in sync")),
        DONE,
    ),
    ("AnnotationProject: outage within the deadline", outage(60), WAITING),
    ("AnnotationProject: stalled, unreachable past the deadline", outage(601), STALLED),
    (
        "AnnotationProject: label config rejected",
        project(Health("stalled", "LabelConfigRejected", "Label Studio rejected the config")),
        STALLED,
    ),
    *rollout_states(),
    ("spec changed, not reconciled yet", spec_changed(), WAITING),
    # kstatus reads an object with no conditions and no observedGeneration as Current: it cannot
    # tell "no controller reports status" from "not reported yet" (README, "Health in GitOps
    # tools"). Flux's expressions fail on the absent status, Unknown, which Flux waits on.
    ("just applied, no status yet", fresh(), ("Current", "Unknown", "Progressing")),
]


@pytest.mark.parametrize(("state", "obj", "expected"), STATES, ids=[s[0] for s in STATES])
def test_every_state_reads_as_a_platform_engineer_expects(
    state: str, obj: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    (read,) = kstatus([obj])
    (flux,) = kstatus([obj], flux=True)
    assert (read["status"], flux["status"], argocd_health(obj)["status"]) == expected


def test_a_stall_carries_its_cause_to_kstatus_and_argo_cd() -> None:
    obj = outage(601)
    (read,) = kstatus([obj])
    for message in (read["message"], argocd_health(obj)["message"]):
        assert message.startswith(REFUSED)
        assert "longer than spec.labelStudio.connectionDeadlineSeconds (600s)" in message


def argocd_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
    return [
        (Path(c["inputPath"]).stem, yaml.safe_load((ARGOCD / c["inputPath"]).read_text()))
        for c in cases
    ]


# Argo CD's health and the Flux status that means the same to a deployment that waits on it.
FLUX_FOR_ARGOCD = {
    "Healthy": "Current",
    "Degraded": "Failed",
    "Progressing": "InProgress",
    "Suspended": "InProgress",  # Flux has no Suspended: it keeps waiting
}


def test_flux_health_checks_agree_with_argo_cd_on_its_test_data() -> None:
    cases = argocd_cases()
    flux = kstatus([obj for _, obj in cases], flux=True)
    for (name, obj), read in zip(cases, flux, strict=True):
        argo = argocd_health(obj)["status"]
        # Without any status Flux cannot evaluate the expressions: Unknown, and it waits.
        wanted = FLUX_FOR_ARGOCD[argo] if "status" in obj else "Unknown"
        assert read["status"] == wanted, f"{name}: Argo CD {argo}, Flux {read}"


def test_one_flux_health_check_per_kind_all_alike() -> None:
    checks = yaml.safe_load(FLUX_HEALTH_CHECKS.read_text())
    assert sorted(c["kind"] for c in checks) == sorted(k.kind for k in KINDS)
    assert {c["apiVersion"] for c in checks} == {API_VERSION}
    rules = {(c["inProgress"], c["failed"], c["current"]) for c in checks}
    assert len(rules) == 1  # the kinds report the same conditions, so one rule serves all
