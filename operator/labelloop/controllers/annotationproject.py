"""AnnotationProject handlers: run (or find) Label Studio and report on it.

Like every controller here, one level-triggered `reconcile` runs on create, on spec changes,
on operator start and on a timer, and re-reads the truth each time.
"""

from __future__ import annotations

import secrets
from typing import Any

import kopf

from ..api import (
    ANNOTATION_PROJECT,
    GROUP,
    VERSION,
    AnnotationProjectSpec,
    ManifestError,
    parse_manifest,
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
from .conditions import Health
from .context import RETRY_SECONDS, OperatorContext
from .reporting import report

RESOURCE = (GROUP, VERSION, ANNOTATION_PROJECT.plural)


@kopf.on.create(*RESOURCE, backoff=RETRY_SECONDS)
@kopf.on.update(*RESOURCE, field="spec", backoff=RETRY_SECONDS)
@kopf.on.resume(*RESOURCE, backoff=RETRY_SECONDS)
@kopf.timer(*RESOURCE, interval=10.0, initial_delay=10.0, backoff=RETRY_SECONDS)
def reconcile_annotation_project(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    context: OperatorContext = memo["context"]
    owner = Owner(ANNOTATION_PROJECT.kind, meta["name"], meta["namespace"], meta["uid"])
    generation = meta.get("generation")
    try:
        spec = parse_manifest(body).spec
        assert isinstance(spec, AnnotationProjectSpec)
    except ManifestError as error:
        report(body, status, patch, Health("stalled", "InvalidSpec", str(error)), generation)
        return
    if spec.label_studio.managed is not None:
        health = _reconcile_managed_server(context, owner, spec, patch)
    else:
        assert spec.label_studio.external is not None
        patch.status["labelStudio"] = {"url": spec.label_studio.external.url}
        health = Health("ready", "External", "using an external Label Studio server")
    report(body, status, patch, health, generation)


def _reconcile_managed_server(
    context: OperatorContext, owner: Owner, spec: AnnotationProjectSpec, patch: kopf.Patch
) -> Health:
    assert spec.label_studio.managed is not None
    kube = context.kube
    inputs = LabelStudioInputs(
        owner=owner,
        managed=spec.label_studio.managed,
        credentials=spec.credentials_secret_ref,
        admin_email=f"labelloop@{owner.name}.{owner.namespace}.local",
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
        )
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
    patch.status["labelStudio"] = {
        "url": service_url(owner),
        "replicas": desired,
        "readyReplicas": ready,
    }
    if desired and ready >= desired:
        return Health("ready", "ServerReady", f"Label Studio ready ({ready}/{desired} replicas)")
    return Health(
        "reconciling", "ServerStarting", f"Label Studio starting ({ready}/{desired} ready)"
    )
