"""Two operator replicas with leader election, on the local control plane and the session's
real Label Studio: exactly one acts, and losing it mid-round loses and duplicates nothing.

The session's operator (no election) is stopped for these tests and started again after, so
the two replicas here are the only operators acting on the test namespaces. Each replica is
`labelloop operator --leader-election --leader-service` as the chart runs it, with the chart's
ServiceAccount token: the Lease it contends for and the webhook Service it routes to itself
are the ones the chart's Role grants (named after the release, in the release namespace), so
these tests also prove that grant is enough.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.cluster import Cluster
from fixtures.labelstudio import LabelStudioServer
from fixtures.operator import (
    RELEASE,
    RELEASE_NAMESPACE,
    OperatorProcess,
    apply,
    b64,
    bound_claim,
    condition,
    eventually,
    get,
    items,
    status_of,
)
from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.leader.policy import Timing, pod_of
from paths import SHARED_DATA

pytestmark = [pytest.mark.cluster, pytest.mark.labelstudio]

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/></Choices>'
    "</View>"
)
SCHEMA = parse_label_config(CONFIG)
TIMING = Timing()  # the replicas run with the defaults, as the chart does
# What kwok's pods report as rank 0's result (hack/kwok-stages.yaml).
RESULT = {
    "modelVersion": "kwok",
    "artifactUri": "pvc://models/reviews/kwok",
    "dataset": {"count": 3, "hash": "sha256:0"},
    "metrics": {"f1": 0.5},
}
# Held in a Kueue queue (a suspended Job) until the test lets it run, as Kueue would: the
# round stays between its trigger and its completion for as long as the test needs.
TEMPLATE = {
    "baseModel": {"uri": "pvc://models/base/minilm"},
    "output": {"uri": "pvc://models/reviews"},
    "resources": {"gpusPerNode": 0, "queueName": "training"},
    "podMetadata": {"annotations": {"labelloop.io/kwok-result": json.dumps(RESULT)}},
}


@dataclass
class Replica:
    """One operator process of the pair, named and addressed as its pod would be."""

    pod: str
    pod_ip: str
    process: OperatorProcess

    def metrics(self) -> dict[str, float]:
        """This process's samples, by name with labels."""
        text = httpx.get(self.process.metrics_url, timeout=5).text
        samples = (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
        return {name: float(value) for name, value in samples}

    def reconciles(self) -> float:
        """Passes of any handler this process ran (labelloop_reconciles_total, all labels)."""
        found = self.metrics()
        return sum(v for k, v in found.items() if k.startswith("labelloop_reconciles_total{"))

    def leading(self) -> bool:
        return self.metrics()["labelloop_leader"] == 1.0

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.process.liveness_url, timeout=5) as answer:
            body: dict[str, Any] = json.load(answer)
        return body


def lease(cluster: Cluster) -> dict[str, Any]:
    found = get(cluster, "lease", RELEASE, RELEASE_NAMESPACE)
    spec: dict[str, Any] = (found or {}).get("spec") or {}
    return spec


def routed_to(cluster: Cluster, replica: Replica) -> bool:
    """Whether the chart's webhook Service is routed to `replica` (its EndpointSlice)."""
    found = get(cluster, "endpointslice", RELEASE, RELEASE_NAMESPACE) or {}
    port = int(replica.process.webhook_url.rpartition(":")[2])
    endpoints = [(e["addresses"], e["targetRef"]["name"]) for e in found.get("endpoints") or ()]
    ports = [(p["name"], p["port"]) for p in found.get("ports") or ()]
    return endpoints == [([replica.pod_ip], replica.pod)] and ports == [("webhook", port)]


def holder(cluster: Cluster, replicas: list[Replica]) -> Replica | None:
    """The replica the Lease names, if it names one of them."""
    pod = pod_of(lease(cluster).get("holderIdentity") or "")
    return next((r for r in replicas if r.pod == pod), None)


@pytest.fixture
def replicas(chart: Cluster, operator: OperatorProcess, tmp_path: Path) -> Iterator[list[Replica]]:
    """Two elected operator processes in place of the session's: `operator-a`, which takes the
    Lease, then `operator-b`."""
    operator.stop()
    chart.kubectl("delete", "lease", RELEASE, "-n", RELEASE_NAMESPACE, "--ignore-not-found")
    pair = []
    # Addresses from TEST-NET-1, which no pod has: the Service routed to them reaches nothing.
    for pod, pod_ip in (("operator-a", "192.0.2.1"), ("operator-b", "192.0.2.2")):
        process = OperatorProcess(
            operator.kubeconfig,
            tmp_path / f"{pod}.log",
            args=[
                "--leader-election",
                f"--leader-election-namespace={RELEASE_NAMESPACE}",
                f"--lease-name={RELEASE}",
                f"--leader-service={RELEASE}",
            ],
            env={"POD_NAME": pod, "POD_IP": pod_ip},
        )
        pair.append(Replica(pod, pod_ip, process))
    try:
        first, second = pair
        first.process.start()
        eventually(lambda: holder(chart, pair) is first, "operator-a to take the Lease")
        second.process.start()  # returns once its liveness endpoint answers, as a standby
        yield pair
    finally:
        for replica in pair:
            replica.process.stop()
        chart.kubectl("delete", "lease", RELEASE, "-n", RELEASE_NAMESPACE, "--ignore-not-found")
        operator.start()


@pytest.fixture
def ls(label_studio: LabelStudioServer) -> Iterator[LabelStudioClient]:
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        yield client


def reviews(count: int) -> list[dict[str, Any]]:
    """Real review sentences: DynaSent R1 (Potts et al., 2021), CC BY 4.0."""
    with SHARED_DATA.open() as lines:
        return [{"text": json.loads(line)["sentence"]} for line in islice(lines, count)]


def counted(kube: Cluster, ns: str, **counts: int) -> dict[str, Any] | None:
    status = status_of(kube, "ap", "reviews", ns)
    have = status.get("counts") or {}
    ready = condition(status, "Ready").get("status") == "True"
    return status if ready and all(have.get(k) == v for k, v in counts.items()) else None


def test_one_replica_acts_and_a_killed_leaders_round_finishes_once(
    kube: Cluster,
    namespace: str,
    label_studio: LabelStudioServer,
    ls: LabelStudioClient,
    replicas: list[Replica],
) -> None:
    ns = namespace
    leader, standby = replicas
    assert holder(kube, replicas) is leader
    assert leader.leading() and not standby.leading()
    health = standby.health()
    assert health["standby"] is True and pod_of(health["holder"]) == "operator-a"
    # Label Studio's webhooks go to the leader's receiver (the standby runs none).
    eventually(lambda: routed_to(kube, leader), "the webhook Service routed to the leader")

    bound_claim(kube, ns, "models")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ls-token"}}
    apply(kube, ns, {**secret, "data": {"token": b64(label_studio.token)}})
    project = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "reviews"},
        "spec": {
            "labelStudio": {"external": {"url": label_studio.url}},
            "credentialsSecretRef": {"name": "ls-token"},
            "project": {"title": f"reviews {secrets.token_hex(3)}", "labelConfig": CONFIG},
            "data": {"inline": reviews(10)},
            "training": {"trigger": {"newAnnotations": 3}, "template": TEMPLATE},
        },
    }
    apply(kube, ns, project)
    status = eventually(lambda: counted(kube, ns, tasks=10), "the project synced", 90)
    tasks = sorted(ls.iter_tasks(status["labelStudio"]["projectId"]), key=lambda t: t.id)

    def annotate(task_index: int) -> int:
        result = build_result(SCHEMA, ["Positive"])
        return ls.create_annotation(tasks[task_index].id, result).id

    # Round 1 starts: its FineTuneJob, and its Job waiting in the queue.
    third = [annotate(i) for i in range(3)][-1]
    job = eventually(lambda: get(kube, "finetunejob", "reviews-r1", ns), "round 1", 60)
    assert job["spec"]["annotationProjectRef"]["lastAnnotationId"] == third
    queued = eventually(lambda: get(kube, "job", "reviews-r1", ns), "round 1's Job")
    assert queued["spec"]["suspend"] is True
    eventually(lambda: counted(kube, ns, annotations=3, sinceLastTraining=0), "round 1 counted")
    # Only the leader has acted: the standby ran no handler and listens for no webhook.
    assert leader.reconciles() > 0
    assert standby.reconciles() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{standby.process.webhook_url}/webhook/{ns}/reviews", json={})

    # The leader dies mid-round; annotators go on meanwhile.
    killed_at = time.monotonic()
    leader.process.kill()
    fifth = [annotate(i) for i in (3, 4)][-1]
    eventually(lambda: holder(kube, replicas) is standby, "the standby to take over", 60)
    taken_after = time.monotonic() - killed_at
    # Not before the dead leader's Lease expired; within a lease duration of its last renewal,
    # plus the standby's two polls (the one that saw that renewal, the one that takes over)
    # and this test's own polling.
    assert TIMING.renew_deadline < taken_after
    assert taken_after <= TIMING.lease_duration + 2 * TIMING.retry_period + 5
    assert lease(kube)["leaseTransitions"] == 1
    eventually(lambda: routed_to(kube, standby), "the webhook Service routed to the new leader")

    # The new leader counts what came in while nobody led, and lets the round finish.
    status = eventually(
        lambda: counted(kube, ns, annotations=5, sinceLastTraining=2), "the counts, after", 60
    )
    assert (status["rounds"], status["lastFineTuneJob"]) == (1, "reviews-r1")
    kube.kubectl(
        "patch", "job", "reviews-r1", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )

    def succeeded() -> dict[str, Any] | None:
        found = status_of(kube, "finetunejob", "reviews-r1", ns)
        return found if found.get("phase") == "Succeeded" else None

    assert eventually(succeeded, "round 1 to succeed", 60)["metrics"] == RESULT["metrics"]

    # Round 2 under the new leader: one more FineTuneJob, from the annotations after round 1.
    sixth = annotate(5)
    job = eventually(lambda: get(kube, "finetunejob", "reviews-r2", ns), "round 2", 60)
    assert job["spec"]["annotationProjectRef"]["lastAnnotationId"] == sixth
    assert sixth > fifth
    status = eventually(lambda: counted(kube, ns, annotations=6, sinceLastTraining=0), "round 2")
    assert status["rounds"] == 2
    assert sorted(j["metadata"]["name"] for j in items(kube, "finetunejobs", ns)) == [
        "reviews-r1",
        "reviews-r2",
    ]
    assert sorted(j["metadata"]["name"] for j in items(kube, "jobs", ns)) == [
        "reviews-r1",
        "reviews-r2",
    ]

    # The killed replica comes back (as Kubernetes would restart it) and waits.
    leader.process.start()
    time.sleep(2 * TIMING.retry_period)
    assert holder(kube, replicas) is standby
    assert leader.reconciles() == 0 and not leader.leading()


def test_a_leader_stopped_cleanly_hands_over_at_once(
    kube: Cluster, replicas: list[Replica]
) -> None:
    leader, standby = replicas
    before = lease(kube)
    assert pod_of(before["holderIdentity"]) == leader.pod

    assert leader.process.process is not None
    stopped_at = time.monotonic()
    leader.process.process.send_signal(signal.SIGTERM)
    eventually(lambda: holder(kube, replicas) is standby, "the standby to take over", 30)
    handed_over_after = time.monotonic() - stopped_at
    # Released, not expired: well within the lease duration a kill costs.
    assert handed_over_after < TIMING.lease_duration - TIMING.retry_period
    assert leader.process.process.wait(timeout=30) == 0
    after = lease(kube)
    assert after["leaseTransitions"] == before["leaseTransitions"] + 1
    assert after["leaseDurationSeconds"] == TIMING.lease_duration
    eventually(standby.leading, "the new leader's gauge")
