"""NetworkPolicies of the pods the operator creates: who may reach a prelabel server.

A prelabel server answers whoever asks, and `/setup` carries a project owner's Label Studio
token, so only these pods may open a connection to it, on its port: the operator (which calls
`/predict` for each prelabel pass), the project's own Label Studio (which checks the ML
backend and may ask for predictions itself) and, where named, the Prometheus that scrapes its
`/metrics` (same port). Everything else in the cluster is refused, where the cluster's
network plugin enforces NetworkPolicies.

The operator's and the scrapers' pods are named by `PolicyPeers` (the chart passes them,
`--network-policies`). A managed Label Studio's pods are the project's children, so the
policy names them; an external Label Studio may run anywhere, so a project on one gets no
policy from the operator (a NetworkPolicy that allows the operator alone would cut off its
Label Studio): such a cluster adds its own, naming where its Label Studio runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from . import labelstudio, prelabel
from .common import LABEL_PREFIX, MANAGED_BY, Manifest, Owner, child_name, labels, metadata


class Peer(BaseModel):
    """Pods in one namespace that carry these labels."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    namespace: Annotated[str, Field(min_length=1)]
    pod_labels: Annotated[dict[str, str], Field(min_length=1)]

    def selector(self) -> dict[str, Any]:
        """The NetworkPolicy peer that names these pods."""
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.namespace}},
            "podSelector": {"matchLabels": dict(self.pod_labels)},
        }


class PolicyPeers(BaseModel):
    """Who besides a project's Label Studio may reach its prelabel servers
    (`--network-policies`: JSON with these fields in camelCase)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    operator: Peer
    """The operator's pods."""
    scrapers: tuple[Peer, ...] = ()
    """Prometheus, or whatever else scrapes the servers' `/metrics`."""


def policy_name(owner: Owner) -> str:
    return child_name(owner.name, "ingress")


def label_studio_pods(project: str) -> dict[str, str]:
    """Labels of a managed project's Label Studio pods (a subset of what they carry)."""
    return {
        "app.kubernetes.io/name": labelstudio.COMPONENT,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{LABEL_PREFIX}/annotationproject": project,
    }


def build_prelabel_network_policy(
    owner: Owner, peers: PolicyPeers, managed_project: str
) -> Manifest:
    """Ingress to the PrelabelService `owner`'s pods, on the server's port, from the operator,
    the scrapers and the Label Studio pods of `managed_project` (same namespace) only."""
    project_label_studio = {"podSelector": {"matchLabels": label_studio_pods(managed_project)}}
    allowed = [peers.operator.selector(), project_label_studio]
    allowed += [scraper.selector() for scraper in peers.scrapers]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(owner, policy_name(owner), prelabel.COMPONENT),
        "spec": {
            "podSelector": {"matchLabels": labels(owner, prelabel.COMPONENT)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": allowed, "ports": [{"protocol": "TCP", "port": prelabel.PORT}]}],
        },
    }
