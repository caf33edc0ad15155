"""The Helm chart: lints, renders least-privilege RBAC, refuses bad values, installs."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from fixtures.cluster import Cluster
from fixtures.operator import CHART, HELM, RELEASE, RELEASE_NAMESPACE

pytestmark = pytest.mark.cluster


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=60, check=check
    )


# The Role and RoleBinding for the operator's Lease, in the release namespace in either mode.
LEASE_GRANT = "labelloop-leader-election"


def render(*values: str) -> list[dict[str, Any]]:
    sets = [arg for v in values for arg in ("--set", v)]
    out = helm("template", "labelloop", str(CHART), "--namespace", "ops", *sets).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_lints() -> None:
    result = helm("lint", str(CHART), "--strict")
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_cluster_wide_mode_grants_named_verbs_only() -> None:
    docs = render()
    assert not [
        d
        for d in docs
        if d["kind"] in ("Role", "RoleBinding") and d["metadata"]["name"] != LEASE_GRANT
    ]
    (role,) = [
        d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "labelloop"
    ]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
    secrets = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]}]


def test_namespaced_mode_has_no_cluster_wide_grant() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    # The trainer's role is defined cluster-wide but only ever bound inside a namespace.
    (trainer,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert trainer["metadata"]["name"] == "labelloop-trainer"
    roles = sorted(
        d["metadata"]["namespace"]
        for d in docs
        if d["kind"] == "Role" and d["metadata"]["name"] != LEASE_GRANT
    )
    assert roles == ["team-a", "team-b"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_training_pods_may_only_report_progress() -> None:
    (trainer,) = [d for d in render() if d["metadata"]["name"] == "labelloop-trainer"]
    assert trainer["rules"] == [
        {"apiGroups": ["labelloop.io"], "resources": ["finetunejobs"], "verbs": ["get"]},
        {
            "apiGroups": ["labelloop.io"],
            "resources": ["finetunejobs/status"],
            "verbs": ["get", "patch"],
        },
    ]


def test_operator_pod_is_restricted() -> None:
    (deployment,) = [d for d in render() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True


def test_two_replicas_elect_a_leader_by_default() -> None:
    docs = render()
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # Standbys come up before an old pod stops; the old leader hands the Lease over.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert "--leader-election" in args
    assert "--leader-election-namespace=ops" in args
    assert "--lease-name=labelloop" in args
    assert "--leader-service=labelloop" in args
    # The holder identity names the pod, and the leader routes the webhook Service to its
    # address (downward API).
    assert container["env"] == [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    # Webhooks go to the leader alone (no selector: its EndpointSlice), metrics to every pod.
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    assert services["labelloop"] == {
        "ports": [{"name": "webhook", "port": 8081, "targetPort": "webhook"}]
    }
    assert services["labelloop-metrics"]["selector"] == spec["selector"]["matchLabels"]
    # Replicas spread over nodes where they can, and a drain takes one at a time.
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    (budget,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert budget["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}


@pytest.mark.parametrize("values", [(), ("watchNamespaces={team-a}",)])
def test_the_lease_is_the_only_thing_granted_in_the_release_namespace(
    values: tuple[str, ...],
) -> None:
    docs = render(*values)
    (role,) = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == LEASE_GRANT]
    assert role["metadata"]["namespace"] == "ops"
    # create cannot name its object; everything else is this release's Lease and its webhook
    # Service's EndpointSlice only.
    assert role["rules"] == [
        {"apiGroups": [group], "resources": [resource], "verbs": verbs}
        | ({"resourceNames": ["labelloop"]} if verbs != ["create"] else {})
        for group, resource in (
            ("coordination.k8s.io", "leases"),
            ("discovery.k8s.io", "endpointslices"),
        )
        for verbs in (["create"], ["get", "update"])
    ]
    (binding,) = [
        d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == LEASE_GRANT
    ]
    assert binding["roleRef"]["name"] == LEASE_GRANT
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "labelloop", "namespace": "ops"}
    ]
    others = [d for d in docs if d["kind"] in ("Role", "ClusterRole") and d is not role]
    assert not [
        r for d in others for r in d["rules"] if {"leases", "endpointslices"} & set(r["resources"])
    ]


def test_without_leader_election_one_replica_is_replaced_whole() -> None:
    docs = render("leaderElection.enabled=false", "replicas=1")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert not [a for a in container["args"] if a.startswith(("--leader-election", "--lease"))]
    assert "env" not in container
    (service,) = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "labelloop"
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert not [d for d in docs if d["metadata"]["name"] == LEASE_GRANT]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        # Without leader election every replica would act: the default two are refused.
        ("leaderElection.enabled=false", "replicas"),
        ("replicas=-1", "replicas"),
        ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
        ("logFormat=xml", "logFormat"),
        ("imagee.tag=x", "imagee"),
    ],
)
def test_values_schema_refuses_bad_values(value: str, complaint: str) -> None:
    result = helm("template", "labelloop", str(CHART), "--set", value, check=False)
    assert result.returncode != 0 and complaint in result.stderr


def test_argocd_snippet_carries_one_health_check_per_kind() -> None:
    out = helm(
        "template",
        "labelloop",
        str(CHART),
        "--set",
        "argocd.healthChecks=true",
        "-s",
        "templates/argocd-health-checks.yaml",
    ).stdout
    (config_map,) = [d for d in yaml.safe_load_all(out) if d]
    keys = sorted(config_map["data"])
    assert keys == [
        f"resource.customizations.health.labelloop.io_{k}"
        for k in ("AnnotationProject", "FineTuneJob", "PrelabelService")
    ]
    assert all("hs.status" in v for v in config_map["data"].values())


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("create", "jobs.batch", True),
        ("patch", "finetunejobs.labelloop.io --subresource=status", True),
        ("create", "deployments.apps", True),
        ("get", "secrets", True),
        ("list", "secrets", False),
        ("delete", "jobs.batch", False),
        ("delete", "nodes", False),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", False),
        ("create", "pods/exec", False),
    ],
)
def test_installed_service_account_has_exactly_what_it_needs(
    chart: Cluster, verb: str, resource: str, allowed: bool
) -> None:
    account = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
    args = resource.split()
    result = chart.kubectl("auth", "can-i", verb, *args, "-A", "--as", account, check=False)
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


@pytest.mark.parametrize("kind", ["leases.coordination.k8s.io", "endpointslices.discovery.k8s.io"])
@pytest.mark.parametrize(
    ("verb", "name", "namespace", "allowed"),
    [
        ("create", "", RELEASE_NAMESPACE, True),
        ("get", f"/{RELEASE}", RELEASE_NAMESPACE, True),
        ("update", f"/{RELEASE}", RELEASE_NAMESPACE, True),
        ("update", "/someone-elses", RELEASE_NAMESPACE, False),
        ("list", "", RELEASE_NAMESPACE, False),
        ("delete", f"/{RELEASE}", RELEASE_NAMESPACE, False),
        ("create", "", "default", False),
        ("get", f"/{RELEASE}", "kube-system", False),
    ],
)
def test_installed_service_account_holds_only_its_lease_and_webhook_route(
    chart: Cluster, *, kind: str, verb: str, name: str, namespace: str, allowed: bool
) -> None:
    account = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
    resource = f"{kind}{name}"
    result = chart.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, "--as", account, check=False
    )
    assert result.stdout.strip() == ("yes" if allowed else "no"), result.stderr


def test_the_operator_under_test_authenticates_as_that_service_account(kube: Cluster) -> None:
    path = kube.kubeconfig.parent / "operator.kubeconfig"
    result = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(path),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
