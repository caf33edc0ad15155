"""The local cluster's real node: the project's images, its operator in a pod, and a managed
Label Studio with two replicas sharing PostgreSQL (the `local_env` fixture). The host reaches
pod addresses on the node's bridge directly, which is how these tests talk to each Label Studio
replica on its own.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from fixtures.cluster import Cluster, wait_for
from fixtures.local_env import (
    LOCAL,
    OPERATOR_NAMESPACE,
    PROJECT,
    label_studio,
    label_studio_pods,
    leader_pod,
    live_pods,
    operator_pods,
    ready,
    ready_label_studio_ips,
    real_node_pod,
    run_pod,
)
from fixtures.operator import CHART, HELM, status_of

pytestmark = pytest.mark.e2e


def project_id(cluster: Cluster) -> int:
    return int(status_of(cluster, "annotationproject", PROJECT, LOCAL)["labelStudio"]["projectId"])


# Label Studio's and PostgreSQL's images are servers: they answer their health checks in the
# example environment (test_the_operator_runs_in_its_pod_and_syncs_the_managed_project).
@pytest.mark.parametrize(
    ("image", "args", "expected"),
    [
        ("localhost/labelloop/operator:local", ["--help"], "labelloop"),
        ("localhost/labelloop/trainer:local", ["--help"], "train"),
    ],
    ids=["operator", "trainer"],
)
def test_each_image_runs_on_the_real_node_as_non_root(
    cluster: Cluster, restricted_namespace: str, image: str, args: list[str], expected: str
) -> None:
    name = image.rsplit("/", maxsplit=1)[-1].split(":", maxsplit=1)[0]
    log = run_pod(cluster, restricted_namespace, real_node_pod(name, image, args))
    assert expected in log


def test_the_operator_runs_in_its_pod_and_syncs_the_managed_project(local_env: Cluster) -> None:
    # Two replicas, both Ready (a standby is healthy), one of them holding the Lease.
    operator = operator_pods(local_env)
    assert len(operator) == 2 and all(ready(p) for p in operator)
    assert {p["spec"]["nodeName"] for p in operator} == {"real-0"}
    assert {p["spec"]["serviceAccountName"] for p in operator} == {"labelloop"}
    assert leader_pod(local_env) in {p["metadata"]["name"] for p in operator}
    status = status_of(local_env, "annotationproject", PROJECT, LOCAL)
    assert status["labelStudio"]["readyReplicas"] == 2
    assert status["labelStudio"]["url"] == f"http://reviews-label-studio.{LOCAL}.svc:8080"
    database = live_pods(local_env, LOCAL, "app=reviews-postgres")
    assert [ready(p) for p in database] == [True]
    for pod in [*label_studio_pods(local_env), *database]:
        assert pod["spec"]["nodeName"] == "real-0"
    # `kubectl get ap` shows the tasks the operator imported.
    table = local_env.kubectl("get", "ap", PROJECT, "-n", LOCAL).stdout
    assert " 12 " in table, table


@pytest.mark.parametrize("namespace", [OPERATOR_NAMESPACE, LOCAL])
def test_the_namespaces_enforce_the_restricted_standard_and_admit_every_pod(
    local_env: Cluster, namespace: str
) -> None:
    found = json.loads(local_env.kubectl("get", "namespace", namespace, "-o", "json").stdout)
    assert found["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert local_env.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.strip()
    # Pinning the enforced version is a change of policy, so the API server checks every pod
    # already in the namespace against it and warns of each one it would not admit.
    check = local_env.kubectl(
        "label", "--dry-run=server", "--overwrite", "namespace", namespace,
        "pod-security.kubernetes.io/enforce-version=v1.36",
    )  # fmt: skip
    assert "violate" not in check.stderr, check.stderr


@pytest.fixture
def annotation(local_env: Cluster, token: str) -> Iterator[tuple[int, int]]:
    """An annotation made through the first replica: (task id, annotation id)."""
    first = ready_label_studio_ips(local_env, 2)
    assert first is not None
    with label_studio(first[0], token) as ls:
        tasks = ls.get("/api/tasks", params={"project": project_id(local_env)}).json()["tasks"]
        task = tasks[0]["id"]
        result = [
            {
                "from_name": "sentiment",
                "to_name": "text",
                "type": "choices",
                "value": {"choices": ["Neutral"]},
            }
        ]
        made = ls.post(f"/api/tasks/{task}/annotations", json={"result": result})
        made.raise_for_status()
        annotation_id = int(made.json()["id"])
    yield task, annotation_id
    ips = ready_label_studio_ips(local_env, 2) or []
    if ips:
        with label_studio(ips[0], token) as ls:
            ls.delete(f"/api/annotations/{annotation_id}")


def read_annotation(ip: str, token: str, annotation_id: int) -> list[str]:
    with label_studio(ip, token) as ls:
        answer = ls.get(f"/api/annotations/{annotation_id}")
        answer.raise_for_status()
        choices: list[str] = answer.json()["result"][0]["value"]["choices"]
        return choices


def test_two_replicas_serve_the_same_project(
    local_env: Cluster, token: str, annotation: tuple[int, int]
) -> None:
    _task, annotation_id = annotation
    ips = ready_label_studio_ips(local_env, 2)
    assert ips is not None and len(set(ips)) == 2
    # Made through the first replica, read through the second: one database behind both.
    assert read_annotation(ips[1], token, annotation_id) == ["Neutral"]


def test_killed_pods_come_back_and_nothing_is_lost(
    local_env: Cluster, token: str, annotation: tuple[int, int]
) -> None:
    _task, annotation_id = annotation
    before = {p["metadata"]["name"] for p in label_studio_pods(local_env)}
    victim = sorted(before)[0]
    local_env.kubectl("delete", "pod", victim, "-n", LOCAL, "--wait=false")
    database = live_pods(local_env, LOCAL, "app=reviews-postgres")[0]["metadata"]["name"]
    local_env.kubectl("delete", "pod", database, "-n", LOCAL, "--wait=false")

    def replaced() -> list[str] | None:
        ips = ready_label_studio_ips(local_env, 2)
        names = {p["metadata"]["name"] for p in label_studio_pods(local_env)}
        postgres = live_pods(local_env, LOCAL, "app=reviews-postgres")
        back = len(postgres) == 1 and ready(postgres[0]) and victim not in names
        return ips if ips and back else None

    ips = wait_for(replaced, timeout=300, interval=2, what="replacement pods Ready")
    # Each replica, the new one included, reads the annotation from the restarted database (a
    # replica's first request after the database came back may still fail on its old
    # connection, so each is asked until it answers).
    for ip in ips:

        def answer(ip: str = ip) -> list[str] | None:
            try:
                return read_annotation(ip, token, annotation_id)
            except httpx.HTTPError:
                return None

        assert wait_for(answer, timeout=60, interval=1, what=f"{ip} to answer") == ["Neutral"]
    counts = status_of(local_env, "annotationproject", PROJECT, LOCAL)["counts"]
    assert counts["tasks"] == 12


def test_scaling_to_three_replicas_keeps_the_data(
    local_env: Cluster, token: str, annotation: tuple[int, int]
) -> None:
    _task, annotation_id = annotation
    patch = {"spec": {"labelStudio": {"managed": {"replicas": 3}}}}
    local_env.kubectl(
        "patch", "annotationproject", PROJECT, "-n", LOCAL, "--type=merge", "-p", json.dumps(patch)
    )
    try:
        ips = wait_for(
            lambda: ready_label_studio_ips(local_env, 3),
            timeout=300,
            interval=2,
            what="three ready replicas",
        )
        assert all(read_annotation(ip, token, annotation_id) == ["Neutral"] for ip in ips)
        wait_for(
            lambda: (
                status_of(local_env, "annotationproject", PROJECT, LOCAL)["labelStudio"].get(
                    "readyReplicas"
                )
                == 3
            ),
            timeout=60,
            what="status to show three ready replicas",
        )
    finally:
        patch = {"spec": {"labelStudio": {"managed": {"replicas": 2}}}}
        local_env.kubectl(
            "patch",
            "annotationproject",
            PROJECT,
            "-n",
            LOCAL,
            "--type=merge",
            "-p",
            json.dumps(patch),
        )
        wait_for(
            lambda: ready_label_studio_ips(local_env, 2), timeout=120, what="back to two replicas"
        )


def test_uninstall_and_namespace_deletion_complete_without_the_operator(
    cluster: Cluster,
) -> None:
    """A release of its own, watching only its namespace (none the tests' operators watch):
    uninstalled first (the operator pod goes), then the namespace with a reconciled object in
    it is deleted."""
    namespace = release = f"e2e-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    helm = [str(HELM), "--kubeconfig", str(cluster.kubeconfig)]
    subprocess.run(
        [
            *helm,
            "install",
            release,
            str(CHART),
            "-n",
            namespace,
            "-f",
            str(CHART.parents[1] / "hack" / "local-values.yaml"),
            "--set",
            f"watchNamespaces={{{namespace}}}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    project = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "orphan"},
        "spec": {
            "labelStudio": {"external": {"url": "http://label-studio.invalid:8080"}},
            "credentialsSecretRef": {"name": "orphan-token"},
            "project": {"title": "Orphan", "labelConfig": "<View/>"},
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(project))
    wait_for(
        lambda: status_of(cluster, "annotationproject", "orphan", namespace).get("conditions"),
        timeout=180,
        interval=2,
        what="the release's operator pod to reconcile",
    )
    subprocess.run(
        [*helm, "uninstall", release, "-n", namespace, "--wait"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster.kubectl("delete", "namespace", namespace, "--timeout=120s")
    gone = cluster.kubectl("get", "namespace", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
