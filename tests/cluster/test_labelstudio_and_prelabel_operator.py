"""Managed Label Studio and versioned prelabel deployments on the real control plane."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from fixtures.cluster import Cluster
from fixtures.operator import (
    OperatorProcess,
    apply,
    bound_claim,
    condition,
    eventually,
    get,
    items,
    status_of,
)
from manifest_cases import LABEL_CONFIG

pytestmark = pytest.mark.cluster


def managed_project(name: str, managed: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": name},
        "spec": {
            "labelStudio": {"managed": managed},
            "credentialsSecretRef": {"name": f"{name}-token"},
            "project": {"title": "Managed project", "labelConfig": LABEL_CONFIG},
        },
    }


def test_managed_label_studio_runs_scales_and_reports(
    kube: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "reviews-label-studio", create_claim=False)
    apply(kube, ns, managed_project("reviews", {"replicas": 1}))

    # kwok's pods turn Ready but serve nothing: once the Deployment is ready the operator
    # syncs the project at the Service's in-cluster address, which answers nothing here.
    url = f"http://reviews-label-studio.{ns}.svc:8080"

    def syncing() -> dict[str, Any] | None:
        status = status_of(kube, "ap", "reviews", ns)
        reconciling = condition(status, "Reconciling")
        ok = (
            reconciling.get("reason") == "LabelStudioUnreachable"
            and reconciling["status"] == "True"
        )
        return status if ok else None

    status = eventually(syncing, "the sync waiting for Label Studio", timeout=90)
    assert status["labelStudio"] == {"url": url, "replicas": 1, "readyReplicas": 1}
    assert url in condition(status, "Reconciling")["message"]
    assert condition(status, "Ready")["status"] == condition(status, "Stalled")["status"] == "False"
    deployment = get(kube, "deployment", "reviews-label-studio", ns)
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["SSRF_PROTECTION_ENABLED"]["value"] == "true"
    assert env["LATEST_VERSION_CHECK"]["value"] == "false"
    assert env["LABEL_STUDIO_USER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "reviews-token",
        "key": "token",
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # The token Secret was absent, so the operator generated one, and never logs it.
    secret = get(kube, "secret", "reviews-token", ns)
    assert secret is not None
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) == 40
    assert token not in operator.log.read_text()
    assert token not in json.dumps(status_of(kube, "ap", "reviews", ns))
    # An Event explains the transition: to a starting server, or straight to the unreachable
    # project (which the operator sees first depends on how soon kwok's pods turned Ready).
    events = items(kube, "events", ns, "")
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "reviews"}
    assert reasons & {"ServerStarting", "LabelStudioUnreachable"}, reasons
    assert get(kube, "service", "reviews-label-studio", ns) is not None
    assert get(kube, "hpa", "reviews-label-studio", ns) is None
    assert get(kube, "pdb", "reviews-label-studio", ns) is None

    # Its data volume was made for one replica: several cannot share it, and status says so.
    shared = {"replicas": 2, "database": {"secretRef": {"name": "reviews-postgres"}}}
    apply(kube, ns, managed_project("reviews", shared))

    def stalled() -> dict[str, Any] | None:
        status = status_of(kube, "ap", "reviews", ns)
        return status if condition(status, "Stalled").get("status") == "True" else None

    assert condition(eventually(stalled, "Stalled"), "Stalled")["reason"] == "StorageNotShared"


def test_managed_label_studio_with_a_database_scales_and_autoscales(
    kube: Cluster, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "team-label-studio", create_claim=False)
    database = {"secretRef": {"name": "team-postgres"}}
    apply(kube, ns, managed_project("team", {"replicas": 2, "database": database}))

    def ready_replicas(n: int) -> dict[str, Any] | None:
        ls = status_of(kube, "ap", "team", ns).get("labelStudio") or {}
        return ls if ls.get("readyReplicas") == n and ls.get("replicas") == n else None

    eventually(lambda: ready_replicas(2), "two ready replicas", timeout=90)
    claim = get(kube, "pvc", "team-label-studio", ns)
    assert claim is not None and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pdb = get(kube, "pdb", "team-label-studio", ns)
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1
    deployment = get(kube, "deployment", "team-label-studio", ns)
    assert deployment is not None
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"DJANGO_DB", "POSTGRE_HOST", "POSTGRE_PASSWORD", "SECRET_KEY"} <= env

    apply(kube, ns, managed_project("team", {"replicas": 3, "database": database}))
    eventually(lambda: ready_replicas(3), "three ready replicas", timeout=90)

    autoscaling = {"minReplicas": 4, "maxReplicas": 6}
    apply(kube, ns, managed_project("team", {"autoscaling": autoscaling, "database": database}))
    hpa = eventually(lambda: get(kube, "hpa", "team-label-studio", ns), "the autoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (4, 6)
    # The autoscaler, not the operator, now sets replicas: it raises them to its minimum.
    eventually(lambda: ready_replicas(4), "four ready replicas", timeout=120)


def test_external_label_studio_deploys_nothing(kube: Cluster, namespace: str) -> None:
    project = managed_project("elsewhere", {})
    project["spec"]["labelStudio"] = {"external": {"url": "http://ls.example.com:8080"}}
    apply(kube, namespace, project)

    def reported() -> dict[str, Any] | None:
        status = status_of(kube, "ap", "elsewhere", namespace)
        return status if status.get("labelStudio") else None

    assert eventually(reported, "status")["labelStudio"]["url"] == "http://ls.example.com:8080"
    assert items(kube, "deployments", namespace) == []


def prelabel(name: str, version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "PrelabelService",
        "metadata": {"name": name},
        "spec": {
            "annotationProjectRef": {"name": "reviews"},
            "model": {"version": version, "uri": f"pvc://models/reviews/{version}"},
            "replicas": 2,
            **spec,
        },
    }


def versions(kube: Cluster, ns: str, name: str) -> dict[str, dict[str, Any]]:
    return {v["version"]: v for v in status_of(kube, "pls", name, ns).get("versions") or ()}


def active(kube: Cluster, ns: str, name: str, version: str) -> dict[str, Any] | None:
    status = status_of(kube, "pls", name, ns)
    ok = (
        status.get("activeVersion") == version
        and condition(status, "Ready").get("status") == "True"
    )
    return status if ok else None


def test_canary_rollout_rollback_of_a_never_ready_version_and_rollback_on_request(
    kube: Cluster, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "models")
    rollout = {"steps": [50, 100], "stepSeconds": 2, "readyDeadlineSeconds": 15}
    apply(kube, ns, prelabel("pl", "v1", rollout=rollout))
    eventually(lambda: active(kube, ns, "pl", "v1"), "v1 active")

    # Canary to v2: at the 50% step both versions serve one replica each.
    apply(kube, ns, prelabel("pl", "v2", rollout=rollout))

    def half() -> dict[str, Any] | None:
        vs = versions(kube, ns, "pl")
        return vs if vs.get("v2", {}).get("replicas") == 1 and vs["v1"]["replicas"] == 1 else None

    eventually(half, "the 50% canary step")
    status = eventually(lambda: active(kube, ns, "pl", "v2"), "v2 active")
    assert status["previousVersion"] == "v1"
    vs = versions(kube, ns, "pl")
    assert (vs["v1"]["replicas"], vs["v1"]["state"], vs["v2"]["traffic"]) == (0, "Previous", 100)
    service = get(kube, "service", "pl", ns)
    assert service is not None and service["spec"]["selector"]["labelloop.io/model-version"] == "v2"

    # v3's pods never become Ready: rolled back automatically, v2 keeps serving.
    never_ready = {"annotations": {"labelloop.io/kwok-never-ready": "true"}}
    apply(kube, ns, prelabel("pl", "v3", rollout=rollout, podMetadata=never_ready))

    def rolled_back() -> dict[str, Any] | None:
        status = status_of(kube, "pls", "pl", ns)
        return status if condition(status, "Stalled").get("reason") == "RolledBack" else None

    status = eventually(rolled_back, "v3 rolled back", timeout=60)
    assert status["activeVersion"] == "v2"
    assert "not Ready within readyDeadlineSeconds (15s)" in condition(status, "Stalled")["message"]
    assert versions(kube, ns, "pl")["v3"]["replicas"] == 0

    # Pointing spec.model back at v1 (kept at zero replicas) rolls back at once.
    apply(kube, ns, prelabel("pl", "v1", rollout=rollout))
    status = eventually(lambda: active(kube, ns, "pl", "v1"), "back on v1")
    assert status["previousVersion"] == "v2"
    deployments = items(kube, "deployments", ns, "labelloop.io/prelabelservice=pl")
    assert sorted(d["metadata"]["name"] for d in deployments) == ["pl-v1", "pl-v2", "pl-v3"]


def test_killed_operator_converges_on_restart_without_duplicates(
    kube: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "models")
    bound_claim(kube, ns, "data")
    apply(kube, ns, prelabel("survivor", "v1", rollout={"stepSeconds": 1}))
    eventually(lambda: active(kube, ns, "survivor", "v1"), "v1 active")
    apply(kube, ns, prelabel("survivor", "v2", rollout={"stepSeconds": 1}))
    eventually(lambda: versions(kube, ns, "survivor").get("v2"), "v2 rollout started")
    operator.kill()
    try:
        eventually(lambda: get(kube, "deployment", "survivor-v2", ns), "v2's Deployment")
    finally:
        operator.start()
    eventually(lambda: active(kube, ns, "survivor", "v2"), "v2 active after the restart")
    deployments = items(kube, "deployments", ns, "labelloop.io/prelabelservice=survivor")
    assert sorted(d["metadata"]["name"] for d in deployments) == ["survivor-v1", "survivor-v2"]
    services = items(kube, "services", ns, "labelloop.io/prelabelservice=survivor")
    assert len(services) == 1


def finished_job(kube: Cluster, ns: str, name: str, done: str, passed: bool) -> None:
    """A FineTuneJob of project `reviews`, marked as finished as the trainer would report it."""
    job = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "annotationProjectRef": {"name": "reviews"},
            "baseModel": {"uri": "pvc://models/base/minilm"},
            "output": {"uri": "pvc://models/reviews"},
        },
    }
    apply(kube, ns, job)
    # Let the operator see it first (it waits for the project), then finish it.
    eventually(lambda: status_of(kube, "ftj", name, ns).get("phase"), f"{name} observed")
    status = {
        "phase": "Succeeded",
        "completionTime": done,
        "modelVersion": name,
        "artifactUri": f"pvc://models/reviews/{name}",
        "promotion": {"passed": passed, "reason": "test"},
    }
    kube.kubectl(
        "patch",
        "ftj",
        name,
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def test_auto_promote_follows_the_newest_job_that_passed_its_gate(
    kube: Cluster, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "models")
    finished_job(kube, ns, "reviews-r1", "2026-12-01T10:00:00Z", passed=True)
    service = prelabel("auto", "unused", autoPromote=True, rollout={"strategy": "BlueGreen"})
    service["spec"]["model"] = {"fineTuneJobRef": {"name": "reviews-r1"}}
    apply(kube, ns, service)
    eventually(lambda: active(kube, ns, "auto", "reviews-r1"), "round 1 active")

    # Round 2 failed its gate: not promoted. Round 3 passed: promoted.
    finished_job(kube, ns, "reviews-r2", "2026-12-01T11:00:00Z", passed=False)
    finished_job(kube, ns, "reviews-r3", "2026-12-01T12:00:00Z", passed=True)
    status = eventually(lambda: active(kube, ns, "auto", "reviews-r3"), "round 3 active")
    assert status["previousVersion"] == "reviews-r1"
    assert "reviews-r2" not in versions(kube, ns, "auto")
