"""PrelabelService handlers: find the version to serve, then do what the rollout plan says.

All decisions are in `loop.rollout.plan_rollout`; this module only reads the cluster into
its inputs and writes its plan back (Deployments' replicas, the Service, status, Events).
A pass runs in the object's reconcile loop (`controllers.driver`): on start, when its
Deployments or Service change, when a FineTuneJob of its project or the project changes, and
every `ROLLOUT_RECHECK_SECONDS` while a rollout is under way (its steps and deadlines are
timed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..api import (
    ANNOTATION_PROJECT,
    FINE_TUNE_JOB,
    GROUP,
    PRELABEL_SERVICE,
    VERSION,
    PrelabelServiceSpec,
)
from ..api.prelabelservice import PrelabelServiceStatus, VersionStatus
from ..loop import acceptance
from ..loop.rollout import Observed, Plan, Target, plan_rollout
from ..loop.serving import choose_version, rollout_state_of
from ..resources.common import Owner, UnsupportedUri, labels, mount_pvc_uri
from ..resources.network import build_prelabel_network_policy, policy_name
from ..resources.prelabel import (
    COMPONENT,
    VERSION_LABEL,
    PrelabelInputs,
    build_service,
    build_version_deployment,
    deployment_name,
    service_url,
)
from . import audit
from .audit import Decision
from .conditions import Health
from .context import OperatorContext
from .driver import drive
from .handler import Reconcile, reconciler, stalled_invalid

ROLLOUT_RECHECK_SECONDS = 5.0
NETWORK_POLICY_API = "networking.k8s.io/v1"
API = f"{GROUP}/{VERSION}"


class _NoTarget(Exception):
    """There is no version to serve yet."""


@reconciler(PRELABEL_SERVICE, PrelabelServiceSpec)
def reconcile_prelabel_service(run: Reconcile, spec: PrelabelServiceSpec) -> None:
    context, owner = run.context, run.owner
    try:
        target = _target(context, owner, spec)
        mount_pvc_uri(target.uri, "model uri")
    except UnsupportedUri as error:
        stalled_invalid(run, str(error))
        return
    except _NoTarget as waiting:
        run.report(Health("reconciling", "WaitingForModel", str(waiting)))
        return

    kube = context.kube
    deployments = {
        d["metadata"]["labels"][VERSION_LABEL]: d
        for d in kube.list("apps/v1", "Deployment", owner.namespace, labels(owner, COMPONENT))
    }
    # Annotators' verdicts on each version's prelabels, as the project's pass measured them.
    project = kube.get(
        API, ANNOTATION_PROJECT.kind, spec.annotation_project_ref.name, owner.namespace
    )
    accuracy = acceptance.published_accuracies(project)
    observed = {
        version: Observed(
            ready_replicas=int((d.get("status") or {}).get("readyReplicas") or 0),
            prelabel_accuracy=accuracy.get(version),
        )
        for version, d in deployments.items()
    }
    plan = plan_rollout(
        rollout=spec.rollout,
        replicas=spec.replicas,
        history_limit=spec.revision_history_limit,
        current=rollout_state_of(run.previous(PrelabelServiceStatus)),
        target=target,
        observed=observed,
        now=datetime.now(UTC),
    )

    inputs = PrelabelInputs(
        owner, spec, context.config.trainer_image, context.config.workload_scheduling
    )
    for version in plan.state.versions:
        wanted = plan.replicas[version.version]
        existing = deployments.get(version.version)
        if existing is None:
            kube.create_if_absent(
                build_version_deployment(
                    inputs, version.version, version.uri, wanted, version.base_uri
                )
            )
        elif (existing.get("spec") or {}).get("replicas") != wanted:
            name = deployment_name(owner, version.version)
            kube.patch(
                "apps/v1", "Deployment", name, owner.namespace, {"spec": {"replicas": wanted}}
            )
    for retired in plan.retired:
        kube.delete("apps/v1", "Deployment", deployment_name(owner, retired), owner.namespace)
    kube.apply(build_service(owner, plan.state.active, plan.serve_all_versions))
    _restrict_ingress(context, owner, project)

    run.write(_status(owner, plan, observed))
    for reason, message in plan.events:
        audit.record(run, _decision(reason, message, plan, observed))
    run.report(Health(plan.health, plan.reason, plan.message))
    if plan.health == "reconciling":
        run.recheck_in(ROLLOUT_RECHECK_SECONDS)


drive(PRELABEL_SERVICE, reconcile_prelabel_service)


def _decision(reason: str, message: str, plan: Plan, observed: dict[str, Observed]) -> Decision:
    """One of the rollout plan's events as an audited decision, with the versions' figures."""
    target = plan.state.target
    seen = observed.get(target or "", Observed())
    figures = {
        "target": target,
        "active": plan.state.active,
        "previous": plan.state.previous,
        "canaryStep": plan.state.canary_step,
        "readyReplicas": seen.ready_replicas,
        "prelabelAccuracy": seen.prelabel_accuracy,
    }
    if reason == "RolledBack":
        return Decision(reason, message, figures, outcome=plan.rollback_cause or "", warning=True)
    return Decision(reason, message, figures)


def _restrict_ingress(
    context: OperatorContext, owner: Owner, project: dict[str, Any] | None
) -> None:
    """The service's NetworkPolicy (`resources.network`): applied for a managed project when
    the operator makes policies, deleted otherwise (an external Label Studio's pods cannot be
    named, and a policy without them would cut it off)."""
    peer = context.config.network_policies
    spec = (project or {}).get("spec") or {}
    managed = bool((spec.get("labelStudio") or {}).get("managed"))
    if peer is not None and managed and project is not None:
        name = project["metadata"]["name"]
        context.kube.apply(build_prelabel_network_policy(owner, peer, name))
    else:
        context.kube.delete(
            NETWORK_POLICY_API, "NetworkPolicy", policy_name(owner), owner.namespace
        )


def _target(context: OperatorContext, owner: Owner, spec: PrelabelServiceSpec) -> Target:
    """The version to serve: `loop.serving.choose_version`, as the local runner chooses it."""
    jobs = context.kube.list(API, FINE_TUNE_JOB.kind, owner.namespace, {})
    choice = choose_version(spec, jobs)
    if choice.target is None:
        raise _NoTarget(choice.reason)
    return choice.target


def _status(owner: Owner, plan: Plan, observed: dict[str, Observed]) -> PrelabelServiceStatus:
    traffic = plan.traffic(observed)
    state = plan.state
    return PrelabelServiceStatus(
        active_version=state.active,
        previous_version=state.previous,
        target_version=state.target,
        canary_step=state.canary_step,
        service_url=service_url(owner),
        versions=[
            VersionStatus(
                version=v.version,
                uri=v.uri,
                base_model_uri=v.base_uri,
                deployment=deployment_name(owner, v.version),
                replicas=plan.replicas[v.version],
                ready_replicas=observed.get(v.version, Observed()).ready_replicas,
                prelabel_accuracy=observed.get(v.version, Observed()).prelabel_accuracy,
                traffic=traffic.get(v.version, 0),
                state=v.state,
                since=v.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                **({"message": v.message} if v.message else {}),
            )
            for v in state.versions
        ],
    )
