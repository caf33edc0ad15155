"""AnnotationProject handlers: run (or find) Label Studio, sync the project, report on it.

A managed server is synced like an external one, at its Service's in-cluster URL and with the
token of the credentials Secret, which the server itself was started with as its admin's
token (`resources.labelstudio`); until its Deployment is ready the pass stops at
`ServerStarting`.

Like every controller here, one level-triggered pass runs in the object's reconcile loop
(`controllers.driver`): on start, on its own changes, when its Label Studio Deployment, its
FineTuneJobs or its PrelabelService change, when the webhook receiver or the Label Studio
poller (`label_studio_poll`) reports annotations, and when its webhook secret is due for
renewal; each pass re-reads the truth (`project_sync` holds the steps).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from ..api import ANNOTATION_PROJECT, AnnotationProjectSpec
from ..api.annotationproject import AnnotationProjectStatus, LabelStudioStatus
from ..api.labelconfig import LabelConfigError, parse_label_config
from ..labelstudio.errors import (
    LabelConfigRejected,
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioNotFound,
    LabelStudioUnreachable,
)
from ..resources.common import Owner
from ..resources.labelstudio import (
    LabelStudioInputs,
    build_credentials_secret,
    build_data_claim,
    build_internal_secret,
    build_label_studio_objects,
    can_run_several,
    optional_kinds,
    server_name,
    service_url,
)
from ..steps.webhook import Receiver
from . import audit
from .conditions import (
    ConditionUpdate,
    Deadline,
    Health,
    seconds_left,
    stalled_past,
    status_since,
)
from .context import OperatorContext
from .driver import drive
from .handler import Reconcile, reconciler
from .project_sync import (
    PROJECT_ID_ANNOTATION,
    CredentialsMissing,
    read_token,
    sync_project,
)

# While Label Studio answers with an error, it is asked again this often; while it does not
# answer at all, this often at first, then ever less often (`label_studio_retry_in`).
RETRY_LABEL_STUDIO_SECONDS = 10.0
MAX_RETRY_LABEL_STUDIO_SECONDS = 300.0
# While prelabels are pending, the next batch is pushed this soon.
NEXT_BATCH_SECONDS = 10.0
# Whether Label Studio answered the last pass that called it; its lastTransitionTime to False
# is when an outage began, which the connection deadline counts from.
REACHABLE = "LabelStudioReachable"


@reconciler(ANNOTATION_PROJECT, AnnotationProjectSpec)
def reconcile_annotation_project(run: Reconcile, spec: AnnotationProjectSpec) -> None:
    context, owner = run.context, run.owner
    if spec.label_studio.managed is not None:
        waiting, server = _reconcile_managed_server(context, owner, spec)
        run.write(AnnotationProjectStatus(label_studio=server))
        if waiting is not None:  # no project sync until the Deployment is ready
            run.report(waiting)
            return
        url = service_url(owner)
    else:
        assert spec.label_studio.external is not None
        url = spec.label_studio.external.url
        server = LabelStudioStatus(url=url)
        run.write(AnnotationProjectStatus(label_studio=server))
    health, extra = _sync(run, spec, url, server)
    run.report(health, extra=extra)


drive(ANNOTATION_PROJECT, reconcile_annotation_project)


def _sync(
    run: Reconcile, spec: AnnotationProjectSpec, url: str, server: LabelStudioStatus
) -> tuple[Health, list[ConditionUpdate]]:
    """Sync the Label Studio project at `url`; its failures become a Health, the rest status.

    `server` is what is known of the server already (a managed one's replicas)."""
    context, owner = run.context, run.owner
    try:
        schema = parse_label_config(spec.project.label_config)
    except LabelConfigError as error:
        return Health("stalled", "UnsupportedLabelConfig", str(error)), []
    run.write(AnnotationProjectStatus(task_type=schema.task_type.value, labels=list(schema.labels)))
    try:
        token = read_token(context, spec, owner.namespace)
    except CredentialsMissing as error:
        return Health("stalled", "CredentialsMissing", str(error)), []
    base = context.config.webhook_url
    prior = run.previous(AnnotationProjectStatus)
    answered = [ConditionUpdate(REACHABLE, "True", "Answered", f"Label Studio at {url} answers")]
    try:
        ls = context.label_studio.client(url, token)
        outcome = sync_project(
            ls,
            context,
            owner,
            spec,
            schema=schema,
            prior=prior,
            known_id=_known_project_id(run.meta, prior),
            webhook=Receiver(base, context.webhook_secrets) if base else None,
            answers=context.answers,
        )
    except LabelConfigRejected as error:
        message = f"Label Studio rejected the label config: {error.detail}"
        return Health("stalled", "LabelConfigRejected", message), answered
    except LabelStudioAuthError as error:
        ref = spec.credentials_secret_ref
        message = f"{error} (check the token in Secret {ref.name}, key {ref.key})"
        return Health("stalled", "LabelStudioAuthFailed", message), answered
    except LabelStudioNotFound as error:
        message = f"{error}: was it deleted in Label Studio?"
        return Health("stalled", "ProjectNotFound", message), answered
    except LabelStudioUnreachable as error:
        return _unreachable(run, spec, str(error))
    except LabelStudioError as error:
        run.recheck_in(RETRY_LABEL_STUDIO_SECONDS)
        return Health("reconciling", "LabelStudioError", str(error)), answered
    synced = outcome.status
    assert synced.label_studio is not None and synced.counts is not None
    assert synced.label_studio.project_id is not None
    context.label_studio_poll.follow(owner, ls, synced.label_studio.project_id)
    if base:  # the webhook's secret is renewed early in each replay window
        run.recheck_in(context.webhook_secrets.renewal_in(owner.namespace, owner.name, time.time()))
    if outcome.more_prelabels:
        run.recheck_in(NEXT_BATCH_SECONDS)
    if outcome.round_in is not None:
        run.recheck_in(outcome.round_in)
    found = synced.label_studio.model_dump(exclude_unset=True)
    run.write(synced.model_copy(update={"label_studio": server.model_copy(update=found)}))
    for reason, message in outcome.warnings:
        kopf.warn(run.body, reason=reason, message=message)
    for reason, message in outcome.infos:
        kopf.info(run.body, reason=reason, message=message)
    for decision in outcome.decisions:
        audit.record(run, decision)
    counts = synced.counts
    message = (
        f"project {synced.label_studio.project_id} in sync: {counts.tasks} tasks, "
        f"{counts.annotations} annotations"
    )
    return Health("ready", "ProjectSynced", message), [*outcome.conditions, *answered]


def _unreachable(
    run: Reconcile, spec: AnnotationProjectSpec, error: str
) -> tuple[Health, list[ConditionUpdate]]:
    """An outage keeps the project Reconciling until it has lasted longer than the connection
    deadline, counted from when `REACHABLE` turned False; then it is Stalled."""
    now = datetime.now(UTC)
    since = status_since(run.status.get("conditions"), REACHABLE, "False") or now
    deadline = Deadline(
        "spec.labelStudio.connectionDeadlineSeconds", spec.label_studio.connection_deadline_seconds
    )
    waiting = Health("reconciling", "LabelStudioUnreachable", error)
    down = ConditionUpdate(REACHABLE, "False", "LabelStudioUnreachable", error)
    run.recheck_in(label_studio_retry_in((now - since).total_seconds()))
    left = seconds_left(deadline, since, now)
    if left is not None:
        run.recheck_in(left)
    return stalled_past(deadline, waiting, since, now), [down]


def label_studio_retry_in(down_seconds: float) -> float:
    """When to ask a Label Studio again that has not answered for `down_seconds`: after half
    as long again, from `RETRY_LABEL_STUDIO_SECONDS` up to `MAX_RETRY_LABEL_STUDIO_SECONDS`,
    so that a long outage costs few requests (and status writes) per project, and a short
    one is noticed soon."""
    return min(max(RETRY_LABEL_STUDIO_SECONDS, down_seconds / 2), MAX_RETRY_LABEL_STUDIO_SECONDS)


def _known_project_id(meta: Mapping[str, Any], prior: AnnotationProjectStatus) -> int | None:
    """The project id recorded on the object (written at creation) or, failing that, in status."""
    recorded = (meta.get("annotations") or {}).get(PROJECT_ID_ANNOTATION)
    if recorded:
        return int(recorded)
    return None if prior.label_studio is None else prior.label_studio.project_id


def _reconcile_managed_server(
    context: OperatorContext, owner: Owner, spec: AnnotationProjectSpec
) -> tuple[Health | None, LabelStudioStatus]:
    """Run the server; (None once its Deployment is ready for the sync, else why it is not,
    what status says of it)."""
    assert spec.label_studio.managed is not None
    kube = context.kube
    inputs = LabelStudioInputs(
        owner=owner,
        managed=spec.label_studio.managed,
        credentials=spec.credentials_secret_ref,
        admin_email=f"labelloop@{owner.name}.{owner.namespace}.local",
        scheduling=context.config.workload_scheduling,
        service_cidrs=context.config.service_cidrs,
    )
    # Secrets are made once, with fresh random values, and never rewritten: every replica
    # and every client must keep seeing the same key and token.
    if kube.get("v1", "Secret", spec.credentials_secret_ref.name, owner.namespace) is None:
        token = secrets.token_hex(20)
        kube.create_if_absent(build_credentials_secret(owner, spec.credentials_secret_ref, token))
    kube.create_if_absent(
        build_internal_secret(owner, secrets.token_urlsafe(48), secrets.token_urlsafe(24))
    )
    # The claim's spec is immutable once made; it is created once, then only checked.
    claim = kube.create_if_absent(build_data_claim(inputs))
    if can_run_several(inputs.managed) and "ReadWriteMany" not in claim["spec"]["accessModes"]:
        return Health(
            "stalled",
            "StorageNotShared",
            f"several replicas need a ReadWriteMany data volume, but PersistentVolumeClaim "
            f"{claim['metadata']['name']} was made ReadWriteOnce for one replica: scale back "
            "to one replica, or move the media and delete the claim so a shared one is made",
        ), LabelStudioStatus(url=service_url(owner))
    wanted = build_label_studio_objects(inputs)
    for manifest in wanted:
        kube.apply(manifest)
    present = {(m["apiVersion"], m["kind"]) for m in wanted}
    for api_version, kind in optional_kinds():
        if (api_version, kind) not in present:
            kube.delete(api_version, kind, server_name(owner), owner.namespace)

    deployment = kube.get("apps/v1", "Deployment", server_name(owner), owner.namespace) or {}
    desired = int((deployment.get("spec") or {}).get("replicas") or 0)
    ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
    server = LabelStudioStatus(url=service_url(owner), replicas=desired, ready_replicas=ready)
    if desired and ready >= desired:
        return None, server
    return Health(
        "reconciling",
        "ServerStarting",
        f"Label Studio starting ({ready}/{desired} replicas ready); "
        "the project is synced once all are",
    ), server
