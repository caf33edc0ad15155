"""PrelabelService handlers: find the version to serve, then do what the rollout plan says.

All decisions are in `loop.rollout.plan_rollout`; this module only reads the cluster into
its inputs and writes its plan back (Deployments' replicas, the Service, status, Events).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from ..api import (
    ANNOTATION_PROJECT,
    FINE_TUNE_JOB,
    GROUP,
    PRELABEL_SERVICE,
    VERSION,
    ManifestError,
    PrelabelServiceSpec,
    parse_manifest,
)
from ..loop import acceptance
from ..loop.rollout import Observed, Plan, RolloutState, Target, VersionState, plan_rollout
from ..loop.serving import choose_version
from ..resources.common import Owner, UnsupportedUri, labels, mount_pvc_uri
from ..resources.prelabel import (
    COMPONENT,
    VERSION_LABEL,
    PrelabelInputs,
    build_service,
    build_version_deployment,
    deployment_name,
    service_url,
)
from .conditions import Health
from .context import RETRY_SECONDS, OperatorContext
from .reporting import report

RESOURCE = (GROUP, VERSION, PRELABEL_SERVICE.plural)
API = f"{GROUP}/{VERSION}"


class _NoTarget(Exception):
    """There is no version to serve yet."""


@kopf.on.create(*RESOURCE, backoff=RETRY_SECONDS)
@kopf.on.update(*RESOURCE, field="spec", backoff=RETRY_SECONDS)
@kopf.on.resume(*RESOURCE, backoff=RETRY_SECONDS)
@kopf.timer(*RESOURCE, interval=5.0, initial_delay=5.0, backoff=RETRY_SECONDS)
def reconcile_prelabel_service(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    context: OperatorContext = memo["context"]
    owner = Owner.of(PRELABEL_SERVICE.kind, meta)
    generation = meta.get("generation")
    try:
        spec = parse_manifest(body).spec
        assert isinstance(spec, PrelabelServiceSpec)
        target = _target(context, owner, spec)
        mount_pvc_uri(target.uri, "model uri")
    except (ManifestError, UnsupportedUri) as error:
        report(body, status, patch, Health("stalled", "InvalidSpec", str(error)), generation)
        return
    except _NoTarget as waiting:
        report(
            body, status, patch, Health("reconciling", "WaitingForModel", str(waiting)), generation
        )
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
        current=_state_from_status(status),
        target=target,
        observed=observed,
        now=datetime.now(UTC),
    )

    inputs = PrelabelInputs(owner, spec, context.config.trainer_image)
    for version in plan.state.versions:
        wanted = plan.replicas[version.version]
        existing = deployments.get(version.version)
        if existing is None:
            kube.create_if_absent(
                build_version_deployment(inputs, version.version, version.uri, wanted)
            )
        elif (existing.get("spec") or {}).get("replicas") != wanted:
            name = deployment_name(owner, version.version)
            kube.patch(
                "apps/v1", "Deployment", name, owner.namespace, {"spec": {"replicas": wanted}}
            )
    for retired in plan.retired:
        kube.delete("apps/v1", "Deployment", deployment_name(owner, retired), owner.namespace)
    kube.apply(build_service(owner, plan.state.active, plan.serve_all_versions))

    _write_status(patch, owner, plan, observed)
    for reason, message in plan.events:
        if reason != "RolledBack":  # `report` posts that one, as the Stalled transition
            kopf.info(body, reason=reason, message=message)
    report(body, status, patch, Health(plan.health, plan.reason, plan.message), generation)


def _target(context: OperatorContext, owner: Owner, spec: PrelabelServiceSpec) -> Target:
    """The version to serve: `loop.serving.choose_version`, as the local runner chooses it."""
    jobs = context.kube.list(API, FINE_TUNE_JOB.kind, owner.namespace, {})
    choice = choose_version(spec, jobs)
    if choice.target is None:
        raise _NoTarget(choice.reason)
    return choice.target


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _state_from_status(status: kopf.Status) -> RolloutState:
    versions = tuple(
        VersionState(
            version=v["version"],
            uri=v.get("uri") or "",
            state=v.get("state") or "Progressing",
            since=_parse_time(v.get("since")),
            message=v.get("message"),
        )
        for v in status.get("versions") or ()
    )
    return RolloutState(
        active=status.get("activeVersion"),
        previous=status.get("previousVersion"),
        canary_step=status.get("canaryStep"),
        target=status.get("targetVersion"),
        versions=versions,
    )


def _write_status(
    patch: kopf.Patch, owner: Owner, plan: Plan, observed: dict[str, Observed]
) -> None:
    traffic = plan.traffic(observed)
    state = plan.state
    patch.status["activeVersion"] = state.active
    patch.status["previousVersion"] = state.previous
    patch.status["targetVersion"] = state.target
    patch.status["canaryStep"] = state.canary_step
    patch.status["serviceUrl"] = service_url(owner)
    patch.status["versions"] = [
        {
            "version": v.version,
            "uri": v.uri,
            "deployment": deployment_name(owner, v.version),
            "replicas": plan.replicas[v.version],
            "readyReplicas": observed.get(v.version, Observed()).ready_replicas,
            "prelabelAccuracy": observed.get(v.version, Observed()).prelabel_accuracy,
            "traffic": traffic.get(v.version, 0),
            "state": v.state,
            "since": v.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            **({"message": v.message} if v.message else {}),
        }
        for v in state.versions
    ]
