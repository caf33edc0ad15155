"""What every child object shares: names, labels, owner references, volume mounts of URIs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api import API_VERSION
from ..api.base import PodMetadata, PodScheduling

Manifest = dict[str, Any]

MANAGED_BY = "labelloop"
LABEL_PREFIX = "labelloop.io"


@dataclass(frozen=True)
class Owner:
    """The custom resource a child belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, kind: str, meta: Mapping[str, Any]) -> Owner:
        """The owner described by a custom resource's metadata."""
        return cls(kind, meta["name"], meta["namespace"], meta["uid"])

    def reference(self) -> dict[str, Any]:
        """An owner reference: deleting the owner lets the garbage collector remove the child."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def child_name(parent: str, suffix: str = "", max_length: int = 63) -> str:
    """A DNS-label name derived from the parent's; too long a name keeps a hash of the rest.

    The same inputs always give the same name, so re-running a reconcile finds the child it
    made before instead of making a second one.
    """
    name = f"{parent}-{suffix}" if suffix else parent
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = max_length - len(digest) - len(suffix) - 2
    if suffix and keep >= 1:
        # Keep the suffix whole: it says what the child is.
        return f"{parent[:keep].rstrip('-')}-{digest}-{suffix}"
    return f"{name[: max_length - len(digest) - 1].rstrip('-')}-{digest}"


def labels(owner: Owner, component: str) -> dict[str, str]:
    """Labels on every child; the selector of a child's pods is a subset of them."""
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{LABEL_PREFIX}/{owner.kind.lower()}": owner.name,
    }


def metadata(owner: Owner, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": {**labels(owner, component), **extra_labels},
        "ownerReferences": [owner.reference()],
    }


def pod_template_metadata(
    base_labels: dict[str, str], pod_metadata: PodMetadata | None
) -> dict[str, Any]:
    """Pod labels and annotations: the user's extras first, so ours always win."""
    extra_labels = pod_metadata.labels if pod_metadata and pod_metadata.labels else {}
    annotations = pod_metadata.annotations if pod_metadata and pod_metadata.annotations else {}
    out: dict[str, Any] = {"labels": {**extra_labels, **base_labels}}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def with_scheduling(pod_spec: dict[str, Any], scheduling: PodScheduling | None) -> dict[str, Any]:
    """The pod spec with the operator's workload scheduling added to its own node selector and
    tolerations (a GPU Job's, say): both must hold."""
    if scheduling is None:
        return pod_spec
    out = dict(pod_spec)
    if scheduling.node_selector:
        out["nodeSelector"] = {**pod_spec.get("nodeSelector", {}), **scheduling.node_selector}
    if scheduling.tolerations:
        mine = [t.to_wire() for t in scheduling.tolerations]
        out["tolerations"] = [*pod_spec.get("tolerations", []), *mine]
    return out


@dataclass(frozen=True)
class MountedUri:
    """A `pvc://claim/path` URI as a volume, its mount and the path inside the container."""

    claim: str
    mount_path: str
    local_path: str


class UnsupportedUri(ValueError):
    """A URI the operator cannot mount into a pod."""


def mount_pvc_uri(uri: str, field: str) -> MountedUri:
    """Where a `pvc://<claim>/<path>` URI appears inside a pod (claims at `/mnt/<claim>`)."""
    if not uri.startswith("pvc://"):
        raise UnsupportedUri(
            f"{field}: {uri!r} cannot be mounted; in a cluster use pvc://<claim>/<path> "
            "(object-store URIs need a volume that presents them, such as a CSI driver's PVC)"
        )
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    mount_path = f"/mnt/{claim}"
    return MountedUri(
        claim=claim,
        mount_path=mount_path,
        local_path=f"{mount_path}/{path}".rstrip("/"),
    )


def pvc_volumes(
    mounts: list[MountedUri], read_only_claims: set[str]
) -> tuple[list[Any], list[Any]]:
    """One volume and one mount per distinct claim."""
    volumes, volume_mounts = [], []
    for claim in sorted({m.claim for m in mounts}):
        volume = f"pvc-{claim}"[:63]
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claim}})
        volume_mounts.append(
            {"name": volume, "mountPath": f"/mnt/{claim}", "readOnly": claim in read_only_claims}
        )
    return volumes, volume_mounts


RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
