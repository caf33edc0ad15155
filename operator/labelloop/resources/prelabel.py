"""PrelabelService → one Deployment per model version and one stable Service.

A version's Deployment is created once, from the spec as it was then, and afterwards only
scaled: an old version kept at zero replicas comes back exactly as it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.base import PodScheduling
from ..api.prelabelservice import PrelabelServiceSpec
from .common import (
    RESTRICTED_CONTAINER_SECURITY,
    Manifest,
    Owner,
    child_name,
    labels,
    metadata,
    mount_pvc_uri,
    pod_template_metadata,
    pvc_volumes,
    with_scheduling,
)

COMPONENT = "labelloop-prelabel"
PORT = 9090
VERSION_LABEL = "labelloop.io/model-version"
PRE_STOP_SECONDS = 5


@dataclass(frozen=True)
class PrelabelInputs:
    owner: Owner
    spec: PrelabelServiceSpec
    image: str
    scheduling: PodScheduling | None = None
    """The operator's placement of pods without GPUs (`--workload-scheduling`)."""


def deployment_name(owner: Owner, version: str) -> str:
    return child_name(owner.name, version)


def service_url(owner: Owner) -> str:
    # A dotted, resolvable host: Label Studio refuses ML backend URLs without one.
    return f"http://{owner.name}.{owner.namespace}.svc:{PORT}"


def build_version_deployment(
    inputs: PrelabelInputs, version: str, uri: str, replicas: int, base_uri: str | None = None
) -> Manifest:
    """A version's Deployment: its directory and, where known, its base model, read-only."""
    owner, spec = inputs.owner, inputs.spec
    model = mount_pvc_uri(uri, "model uri")
    args = [f"--model={model.local_path}", f"--port={PORT}", "--host=0.0.0.0"]
    mounted = [model]
    if base_uri is not None:
        base = mount_pvc_uri(base_uri, "base model uri")
        mounted.append(base)
        args.append(f"--base-model={base.local_path}")
    volumes, mounts = pvc_volumes(mounted, read_only_claims={m.claim for m in mounted})
    selector = {**labels(owner, COMPONENT), VERSION_LABEL: version}
    health = {"httpGet": {"path": "/health", "port": "http"}}
    container: dict[str, Any] = {
        "name": "prelabel",
        "image": spec.image or inputs.image,
        "command": ["python", "-m", "labelloop_trainer", "serve"],
        "args": args,
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {**health, "periodSeconds": 2},
        # A pod that goes (scaled down, rolled back) keeps serving until kube-proxy has taken
        # it out of the Service's endpoints, which happens asynchronously: without the pause,
        # requests routed to it in between would be refused.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "livenessProbe": {**health, "periodSeconds": 20, "failureThreshold": 6},
        "volumeMounts": mounts,
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
    }
    if spec.resources is not None:
        container["resources"] = spec.resources.to_wire()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(
            owner, deployment_name(owner, version), COMPONENT, **{VERSION_LABEL: version}
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": pod_template_metadata(selector, spec.pod_metadata),
                "spec": with_scheduling(
                    {
                        "containers": [container],
                        "volumes": volumes,
                        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
                    },
                    inputs.scheduling,
                ),
            },
        },
    }


def build_service(owner: Owner, active: str | None, serve_all_versions: bool) -> Manifest:
    """The stable Service: all versions' pods during a Canary, else the active version's."""
    selector = labels(owner, COMPONENT)
    if active and not serve_all_versions:
        selector = {**selector, VERSION_LABEL: active}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name, COMPONENT),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }
