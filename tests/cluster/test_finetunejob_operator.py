"""FineTuneJob on the real control plane: the scheduler places the gang, the Job runs to a phase."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fixtures.cluster import Cluster
from fixtures.operator import (
    apply,
    bound_claim,
    condition,
    eventually,
    get,
    items,
    status_of,
)
from gitops_health import build_kstatus, kstatus

pytestmark = pytest.mark.cluster

RESULT = {
    "modelVersion": "will-be-replaced",
    "artifactUri": "pvc://models/reviews/x",
    "dataset": {"count": 1200, "hash": "sha256:abc"},
    "metrics": {"accuracy": 0.84, "macro_f1": 0.81},
    "bestEpoch": 4,
    "earlyStopped": True,
    "promotion": {"passed": True, "reason": "f1 0.81 >= 0.80"},
}


def fine_tune_job(
    name: str, resources: dict[str, Any], result: dict[str, Any] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dataset": {"uri": "pvc://data/reviews.jsonl"},
        "baseModel": {"uri": "pvc://models/base/minilm"},
        "output": {"uri": "pvc://models/reviews"},
        "resources": resources,
    }
    if result is not None:
        # The kwok stage of hack/kwok-stages.yaml turns this into rank 0's termination message.
        spec["podMetadata"] = {"annotations": {"labelloop.io/kwok-result": json.dumps(result)}}
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture
def volumes(kube: Cluster, namespace: str) -> str:
    bound_claim(kube, namespace, "data")
    bound_claim(kube, namespace, "models")
    return namespace


NVLINK_2X8 = {
    "nodes": 2,
    "gpusPerNode": 8,
    "interconnect": "nvlink",
    "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "minMemoryGiB": 80},
}


def test_two_node_nvlink_job_runs_on_the_h100_clique_and_succeeds(
    kube: Cluster, volumes: str
) -> None:
    ns = volumes
    apply(kube, ns, fine_tune_job("nvlink", NVLINK_2X8, RESULT))

    job = eventually(lambda: get(kube, "job", "nvlink", ns), "the training Job")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    assert job["metadata"]["ownerReferences"][0]["kind"] == "FineTuneJob"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert container["command"] == ["torchrun"]
    assert "--node-rank=$(LABELLOOP_NODE_RANK)" in container["args"]
    service = get(kube, "service", "nvlink", ns)
    assert service is not None and service["spec"]["clusterIP"] == "None"
    # Training pods run as the namespace's trainer account, which may report progress only.
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "labelloop-trainer"
    trainer = f"system:serviceaccount:{ns}:labelloop-trainer"
    for args, allowed in [
        (("patch", "finetunejobs.labelloop.io", "--subresource=status"), "yes"),
        (("patch", "finetunejobs.labelloop.io"), "no"),
        (("get", "secrets"), "no"),
    ]:
        answer = kube.kubectl("auth", "can-i", *args, "-n", ns, "--as", trainer, check=False)
        assert answer.stdout.strip() == allowed, args

    def placed() -> list[str] | None:
        pods = items(kube, "pods", ns, "batch.kubernetes.io/job-name=nvlink")
        nodes = sorted(p["spec"].get("nodeName") or "" for p in pods)
        return nodes if len(nodes) == 2 and all(nodes) else None

    assert eventually(placed, "both ranks scheduled") == ["gpu-h100-a", "gpu-h100-b"]

    def succeeded() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "nvlink", ns)
        return status if status.get("phase") == "Succeeded" else None

    status = eventually(succeeded, "phase Succeeded")
    assert status["metrics"] == {"accuracy": 0.84, "macro_f1": 0.81}
    assert status["bestEpoch"] == 4 and status["earlyStopped"] is True
    assert status["promotion"]["passed"] is True
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Succeeded")["status"] == "True"
    assert status["startTime"] and status["completionTime"]


def test_impossible_gpu_request_stays_pending_with_the_schedulers_reason(
    kube: Cluster, volumes: str
) -> None:
    ns = volumes
    # No node has eight L4s.
    resources = {"nodes": 1, "gpusPerNode": 8, "gpu": {"product": "NVIDIA-L4"}}
    apply(kube, ns, fine_tune_job("impossible", resources))

    def unschedulable() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "impossible", ns)
        reconciling = condition(status, "Reconciling")
        return status if reconciling.get("reason") == "Unschedulable" else None

    status = eventually(unschedulable, "reason Unschedulable")
    assert status["phase"] == "Pending"
    # The scheduler's own words: none of the cluster's nodes (kwok's and the real one) fits.
    nodes = len(kube.kubectl("get", "nodes", "-o", "name").stdout.split())
    assert f"0/{nodes} nodes are available" in condition(status, "Reconciling")["message"]


def test_a_gpu_no_node_has_stalls_after_the_scheduling_deadline(
    kube: Cluster, volumes: str
) -> None:
    ns = volumes
    resources = {
        "gpusPerNode": 1,
        "gpu": {"product": "NVIDIA-B300-SXM6-288GB"},  # no node of this cluster has one
        "schedulingDeadlineSeconds": 10,
    }
    apply(kube, ns, fine_tune_job("nowhere", resources))

    def stalled() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "nowhere", ns)
        return status if condition(status, "Stalled").get("status") == "True" else None

    status = eventually(stalled, "Stalled after the 10 s scheduling deadline")
    stall = condition(status, "Stalled")
    assert stall["reason"] == "Unschedulable"
    nodes = len(kube.kubectl("get", "nodes", "-o", "name").stdout.split())
    assert f"0/{nodes} nodes are available" in stall["message"]  # the scheduler's words
    assert "longer than spec.resources.schedulingDeadlineSeconds (10s)" in stall["message"]
    # Stalled, not failed: the run is still Pending and may yet be placed.
    assert status["phase"] == "Pending"
    assert condition(status, "Reconciling")["status"] == "False"
    assert not condition(status, "Failed")
    events = items(kube, "events", ns, "")
    assert any(
        e["reason"] == "Unschedulable" and e["type"] == "Warning"
        for e in events
        if e["involvedObject"]["name"] == "nowhere"
    )
    # GitOps tools, reading the object as the operator wrote it, see a failure.
    build_kstatus()
    obj = get(kube, "ftj", "nowhere", ns)
    assert obj is not None
    assert kstatus([obj])[0]["status"] == "Failed"
    assert kstatus([obj], flux=True)[0]["status"] == "Failed"


def test_a_missing_claim_stalls_the_run_until_it_is_made(kube: Cluster, namespace: str) -> None:
    ns = namespace
    bound_claim(kube, ns, "data")  # the models claim the run writes to does not exist yet
    resources = {"gpusPerNode": 1, "schedulingDeadlineSeconds": 10}
    apply(kube, ns, fine_tune_job("unclaimed", resources, RESULT))

    def stalled() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "unclaimed", ns)
        return status if condition(status, "Stalled").get("status") == "True" else None

    stall = condition(eventually(stalled, "Stalled for the missing claim"), "Stalled")
    assert stall["reason"] == "ClaimNotFound"
    assert stall["message"].startswith("PersistentVolumeClaim models not found")

    bound_claim(kube, ns, "models")  # the cause goes: the scheduler places the pod

    def succeeded() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "unclaimed", ns)
        return status if status.get("phase") == "Succeeded" else None

    status = eventually(succeeded, "phase Succeeded once the claim exists", 120)
    assert condition(status, "Stalled")["status"] == "False"
    assert condition(status, "Ready")["status"] == "True"
    build_kstatus()
    obj = get(kube, "ftj", "unclaimed", ns)
    assert obj is not None and kstatus([obj])[0]["status"] == "Current"


def test_job_without_a_result_ends_with_result_missing(kube: Cluster, volumes: str) -> None:
    ns = volumes
    apply(kube, ns, fine_tune_job("silent", {"gpusPerNode": 1}))

    def failed() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "silent", ns)
        return status if status.get("phase") == "Failed" else None

    status = eventually(failed, "phase Failed")
    stalled = condition(status, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "ResultMissing"


def test_queued_job_is_created_suspended_for_kueue(kube: Cluster, volumes: str) -> None:
    ns = volumes
    apply(kube, ns, fine_tune_job("queued", {"gpusPerNode": 1, "queueName": "gpu-team"}))
    job = eventually(lambda: get(kube, "job", "queued", ns), "the training Job")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team"

    def queued() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", "queued", ns)
        return status if condition(status, "Reconciling").get("reason") == "Queued" else None

    assert eventually(queued, "reason Queued")["phase"] == "Pending"


def test_deleting_a_fine_tune_job_removes_its_children(kube: Cluster, volumes: str) -> None:
    ns = volumes
    apply(kube, ns, fine_tune_job("doomed", {"gpusPerNode": 1, "queueName": "q"}))
    eventually(lambda: get(kube, "job", "doomed", ns), "the training Job")
    kube.kubectl("delete", "ftj", "doomed", "-n", ns, "--wait=true")
    for kind in ("job", "service", "configmap"):
        eventually(lambda kind=kind: get(kube, kind, "doomed", ns) is None, f"{kind} collected")
