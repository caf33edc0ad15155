"""The prelabel servers' NetworkPolicy, read the way a network plugin reads it: which pods, in
which namespaces, may open a connection to which pods on which port. The pods are the ones
the operator's own builders make."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from labelloop.api import PrelabelServiceSpec
from labelloop.api.annotationproject import ManagedLabelStudio
from labelloop.api.base import SecretKeySelector
from labelloop.resources.common import Owner
from labelloop.resources.labelstudio import LabelStudioInputs, build_label_studio_objects
from labelloop.resources.network import Peer, PolicyPeers, build_prelabel_network_policy
from labelloop.resources.prelabel import PORT, PrelabelInputs, build_version_deployment

OPERATOR = Peer(
    namespace="labelloop-system",
    pod_labels={"app.kubernetes.io/name": "labelloop", "app.kubernetes.io/instance": "ll"},
)
PROMETHEUS = Peer(namespace="monitoring", pod_labels={"app.kubernetes.io/name": "prometheus"})
SERVICE = Owner("PrelabelService", "reviews-prelabel", "ml", "uid-pls")


def pod_labels_of(deployment: Mapping[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def label_studio_pods(project: str, namespace: str = "ml") -> dict[str, str]:
    owner = Owner("AnnotationProject", project, namespace, f"uid-{project}")
    inputs = LabelStudioInputs(
        owner,
        ManagedLabelStudio.model_validate({"image": "heartexlabs/label-studio:1.23.2"}),
        SecretKeySelector(name="token"),
        "admin@example.com",
    )
    deployment = next(m for m in build_label_studio_objects(inputs) if m["kind"] == "Deployment")
    return pod_labels_of(deployment)


def prelabel_pods(owner: Owner = SERVICE) -> dict[str, str]:
    spec = PrelabelServiceSpec.model_validate(
        {
            "annotationProjectRef": {"name": "reviews"},
            "model": {"version": "v1", "uri": "pvc://m/v1"},
        }
    )
    deployment = build_version_deployment(
        PrelabelInputs(owner, spec, "trainer:1"), "v1", "pvc://m/v1", 1
    )
    return pod_labels_of(deployment)


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def admits(
    policy: Mapping[str, Any],
    source: tuple[str, Mapping[str, str]],
    target: tuple[str, Mapping[str, str]],
    port: int,
) -> bool:
    """Whether `policy` lets a pod (namespace, labels) connect to another on `port`; a pod the
    policy does not select is not restricted by it."""
    spec = policy["spec"]
    target_namespace, target_labels = target
    if target_namespace != policy["metadata"]["namespace"] or not selects(
        spec["podSelector"], target_labels
    ):
        return True
    source_namespace, source_labels = source
    for rule in spec["ingress"]:
        if port not in [p["port"] for p in rule["ports"]]:
            continue
        for peer in rule["from"]:
            namespaces = peer.get("namespaceSelector")
            in_namespace = (
                selects(namespaces, {"kubernetes.io/metadata.name": source_namespace})
                if namespaces is not None
                else source_namespace == target_namespace
            )
            if in_namespace and selects(peer["podSelector"], source_labels):
                return True
    return False


POLICY = build_prelabel_network_policy(
    SERVICE, PolicyPeers(operator=OPERATOR, scrapers=(PROMETHEUS,)), "reviews"
)


@pytest.mark.parametrize(
    ("source", "port", "allowed"),
    [
        (("labelloop-system", OPERATOR.pod_labels), PORT, True),
        (("ml", label_studio_pods("reviews")), PORT, True),
        (("ml", label_studio_pods("reviews")), 22, False),
        (("ml", label_studio_pods("other")), PORT, False),  # another project's Label Studio
        (("team-b", label_studio_pods("reviews", "team-b")), PORT, False),  # same name elsewhere
        (("ml", {"app": "debug-shell"}), PORT, False),
        (("ml", prelabel_pods()), PORT, False),
        (("other-system", OPERATOR.pod_labels), PORT, False),  # the operator's labels elsewhere
        (("labelloop-system", {"app.kubernetes.io/name": "labelloop"}), PORT, False),
        (("monitoring", PROMETHEUS.pod_labels), PORT, True),
        (("monitoring", {"app.kubernetes.io/name": "grafana"}), PORT, False),
    ],
    ids=[
        "operator",
        "project's Label Studio",
        "another port",
        "another project's Label Studio",
        "a namesake in another namespace",
        "any pod",
        "another prelabel server",
        "operator labels in another namespace",
        "another release's operator",
        "the scraper",
        "another pod beside the scraper",
    ],
)
def test_only_the_operator_and_the_projects_label_studio_reach_the_prelabel_servers(
    source: tuple[str, dict[str, str]], port: int, allowed: bool
) -> None:
    assert admits(POLICY, source, ("ml", prelabel_pods()), port) is allowed


def test_the_policy_selects_every_version_of_its_service_and_nothing_else() -> None:
    spec = POLICY["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert selects(spec["podSelector"], prelabel_pods())
    other = Owner("PrelabelService", "other-prelabel", "ml", "uid-other")
    assert not selects(spec["podSelector"], prelabel_pods(other))
    assert not selects(spec["podSelector"], label_studio_pods("reviews"))
    (owner,) = POLICY["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("PrelabelService", "reviews-prelabel")


def test_the_operators_peers_come_from_json_with_each_missing_field_named() -> None:
    text = (
        '{"operator": {"namespace": "labelloop-system", "podLabels": {"app": "labelloop"}},'
        ' "scrapers": [{"namespace": "monitoring", "podLabels": {"app": "prometheus"}}]}'
    )
    peers = PolicyPeers.model_validate_json(text)
    assert peers.operator.namespace == "labelloop-system"
    assert [s.namespace for s in peers.scrapers] == ["monitoring"]
    with pytest.raises(ValueError, match=r"operator\.podLabels"):
        PolicyPeers.model_validate_json('{"operator": {"namespace": "x"}}')


def test_the_local_examples_postgresql_admits_its_projects_label_studio_only() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "local" / "10-postgres.yaml"
    docs = [d for d in yaml.safe_load_all(examples.read_text()) if d]
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    (postgres,) = [d for d in docs if d["kind"] == "Deployment"]
    target = ("labelloop-local", pod_labels_of(postgres))
    project_pods = ("labelloop-local", label_studio_pods("reviews", "labelloop-local"))
    assert admits(policy, project_pods, target, 5432)
    assert not admits(policy, ("labelloop-local", label_studio_pods("other")), target, 5432)
    assert not admits(policy, ("labelloop-local", prelabel_pods()), target, 5432)
    assert not admits(policy, project_pods, target, 22)
