"""AnnotationProject (managed) → a Label Studio Deployment and what it needs to run well.

Label Studio keeps everything in one database and one media directory. One replica may use
SQLite on its volume; several need PostgreSQL (the API refuses more than one replica
without `database`), a shared Django secret key and a volume they can all mount.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.annotationproject import ManagedLabelStudio
from ..api.base import PodScheduling, SecretKeySelector
from .common import Manifest, Owner, child_name, labels, metadata, with_scheduling

COMPONENT = "label-studio"
PORT = 8080
DATA_DIR = "/label-studio/data"
# Keys of the operator's own Secret for a managed server.
SECRET_KEY = "secret-key"
ADMIN_PASSWORD = "admin-password"


# Label Studio 1.23's own SSRF ban list (core/utils/io.py `validate_ip`): every reserved,
# private, loopback and link-local range. A managed server bans all of it except the networks
# the loop needs (the cluster's Service range), so webhooks and ML backends may reach in-cluster
# Services and nothing else private: not pods directly, not nodes, not the cloud metadata
# address (169.254.169.254), which stays banned whatever is allowed.
LABEL_STUDIO_BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "233.252.0.0/24",
    "240.0.0.0/4", "255.255.255.255/32", "::/128", "::1/128", "::ffff:0:0/96",
    "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32",
    "2001:20::/28", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip
# Never allowed, whatever the Service range: loopback and link-local (the metadata address).
ALWAYS_BANNED = ("127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10")


def banned_subnets(allowed: Iterable[str]) -> list[str]:
    """Label Studio's ban list with the `allowed` networks cut out of it (but never loopback or
    link-local), as USER_ADDITIONAL_BANNED_SUBNETS with the default list switched off."""
    allowed_nets = [ipaddress.ip_network(a, strict=False) for a in allowed]
    always = [ipaddress.ip_network(a) for a in ALWAYS_BANNED]
    banned: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for subnet in map(ipaddress.ip_network, LABEL_STUDIO_BANNED_SUBNETS):
        pieces = [subnet]
        if subnet not in always:
            for net in allowed_nets:
                pieces = [rest for piece in pieces for rest in _without(piece, net)]
        banned.extend(pieces)
    return [str(n) for n in sorted(banned, key=lambda n: (n.version, n))]


def _without(
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network,
    allowed: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if subnet.version != allowed.version or not subnet.overlaps(allowed):
        return [subnet]
    if subnet.subnet_of(allowed):  # type: ignore[arg-type]
        return []
    return list(subnet.address_exclude(allowed))  # type: ignore[arg-type]


@dataclass(frozen=True)
class LabelStudioInputs:
    owner: Owner
    managed: ManagedLabelStudio
    credentials: SecretKeySelector
    admin_email: str
    scheduling: PodScheduling | None = None
    """The operator's placement of pods without GPUs (`--workload-scheduling`)."""
    service_cidrs: tuple[str, ...] = ()
    """The cluster's Service ranges: the only private addresses Label Studio may call."""


def server_name(owner: Owner) -> str:
    return child_name(owner.name, "label-studio")


def internal_secret_name(owner: Owner) -> str:
    return child_name(owner.name, "label-studio-internal")


def service_url(owner: Owner) -> str:
    # A dotted, resolvable host: Label Studio refuses webhook and ML URLs without one.
    return f"http://{server_name(owner)}.{owner.namespace}.svc:{PORT}"


def can_run_several(managed: ManagedLabelStudio) -> bool:
    autoscaling = managed.autoscaling
    return managed.replicas > 1 or (autoscaling is not None and autoscaling.max_replicas > 1)


def build_internal_secret(owner: Owner, secret_key: str, admin_password: str) -> Manifest:
    """The Django secret key (shared by all replicas) and the admin's password."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(owner, internal_secret_name(owner), COMPONENT),
        "type": "Opaque",
        "stringData": {SECRET_KEY: secret_key, ADMIN_PASSWORD: admin_password},
    }


def build_credentials_secret(owner: Owner, credentials: SecretKeySelector, token: str) -> Manifest:
    """The API token Secret, when the user did not bring one."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {**metadata(owner, credentials.name, COMPONENT)},
        "type": "Opaque",
        "stringData": {credentials.key: token},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _env(inputs: LabelStudioInputs) -> list[dict[str, Any]]:
    owner, managed = inputs.owner, inputs.managed
    internal = internal_secret_name(owner)
    env: list[dict[str, Any]] = [
        {"name": "LABEL_STUDIO_BASE_DATA_DIR", "value": DATA_DIR},
        {"name": "LABEL_STUDIO_HOST", "value": service_url(owner)},
        # No calls out of the cluster: version check, telemetry and error reporting off.
        {"name": "LATEST_VERSION_CHECK", "value": "false"},
        {"name": "COLLECT_ANALYTICS", "value": "false"},
        {"name": "SENTRY_DSN", "value": ""},
        {"name": "FRONTEND_SENTRY_DSN", "value": ""},
        # SSRF protection stays on. The prelabel services and the operator's webhook receiver
        # are Services, so the Service range is cut out of the ban list, and nothing else.
        {"name": "SSRF_PROTECTION_ENABLED", "value": "true"},
        {"name": "ML_BLOCK_LOCAL_IP", "value": "true"},
        {"name": "USE_DEFAULT_BANNED_SUBNETS", "value": "false"},
        {
            "name": "USER_ADDITIONAL_BANNED_SUBNETS",
            "value": ",".join(banned_subnets(inputs.service_cidrs)),
        },
        # The admin user and its legacy API token (new organisations default to JWT tokens).
        {"name": "LABEL_STUDIO_USERNAME", "value": inputs.admin_email},
        _secret_env("LABEL_STUDIO_PASSWORD", internal, ADMIN_PASSWORD),
        _secret_env("LABEL_STUDIO_USER_TOKEN", inputs.credentials.name, inputs.credentials.key),
        {"name": "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "value": "true"},
        _secret_env("SECRET_KEY", internal, SECRET_KEY),
    ]
    if managed.database is not None:
        db = managed.database.secret_ref.name
        env += [
            {"name": "DJANGO_DB", "value": "default"},
            _secret_env("POSTGRE_HOST", db, "host"),
            _secret_env("POSTGRE_PORT", db, "port"),
            _secret_env("POSTGRE_NAME", db, "database"),
            _secret_env("POSTGRE_USER", db, "username"),
            _secret_env("POSTGRE_PASSWORD", db, "password"),
        ]
    return env


def _selector(owner: Owner) -> dict[str, str]:
    return labels(owner, COMPONENT)


def build_data_claim(inputs: LabelStudioInputs) -> Manifest:
    storage = inputs.managed.storage
    # Several replicas must all mount the media directory.
    access = "ReadWriteMany" if can_run_several(inputs.managed) else "ReadWriteOnce"
    spec: dict[str, Any] = {
        "accessModes": [access],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(inputs.owner, server_name(inputs.owner), COMPONENT),
        "spec": spec,
    }


def build_deployment(inputs: LabelStudioInputs) -> Manifest:
    owner, managed = inputs.owner, inputs.managed
    name = server_name(owner)
    health = {"httpGet": {"path": "/health", "port": "http"}}
    container: dict[str, Any] = {
        "name": "label-studio",
        "image": managed.image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "env": _env(inputs),
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
        # Migrations on a first start take minutes on a small node, and replicas of a fresh
        # database take turns at them; the startup probe waits up to 15 minutes.
        "startupProbe": {**health, "periodSeconds": 5, "failureThreshold": 180},
        "readinessProbe": {**health, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**health, "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if managed.resources is not None:
        container["resources"] = managed.resources.to_wire()
    spec: dict[str, Any] = {
        "selector": {"matchLabels": _selector(owner)},
        "template": {
            "metadata": {"labels": _selector(owner)},
            "spec": with_scheduling(
                {
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
                    # The image runs as uid 1001; fsGroup makes the volume writable for it.
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1001, "fsGroup": 1001},
                },
                inputs.scheduling,
            ),
        },
    }
    # With an autoscaler the HPA owns `replicas`; stating it here would fight it.
    if managed.autoscaling is None:
        spec["replicas"] = managed.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, name, COMPONENT),
        "spec": spec,
    }


def build_service(inputs: LabelStudioInputs) -> Manifest:
    owner = inputs.owner
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, server_name(owner), COMPONENT),
        "spec": {
            "selector": _selector(owner),
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }


def build_autoscaler(inputs: LabelStudioInputs) -> Manifest | None:
    autoscaling = inputs.managed.autoscaling
    if autoscaling is None:
        return None
    owner = inputs.owner
    name = server_name(owner)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(owner, name, COMPONENT),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
        },
    }


def build_disruption_budget(inputs: LabelStudioInputs) -> Manifest | None:
    if not can_run_several(inputs.managed):
        return None
    owner = inputs.owner
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, server_name(owner), COMPONENT),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(owner)}},
    }


def build_label_studio_objects(inputs: LabelStudioInputs) -> list[Manifest]:
    """The server's children besides its Secrets and data claim, in the order they are applied."""
    optional = [build_autoscaler(inputs), build_disruption_budget(inputs)]
    return [
        build_service(inputs),
        build_deployment(inputs),
        *(m for m in optional if m is not None),
    ]


def optional_kinds() -> list[tuple[str, str]]:
    """Children that come and go with the spec; the controller deletes those not wanted."""
    return [("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget")]
