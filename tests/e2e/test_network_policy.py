"""NetworkPolicy on the local cluster's real node, where kube-router's firewall enforces it
(hack/node-up.sh): the policy the operator gives a prelabel server lets the pods it names in
and turns every other pod away, while this host (the kubelet's probes, these tests) still
reaches the server.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from fixtures.cluster import Cluster, wait_for
from fixtures.local_env import OPERATOR_NAMESPACE, ready, real_node_pod, run_pod
from fixtures.operator import get
from labelloop.resources import prelabel
from labelloop.resources.common import Owner, labels
from labelloop.resources.network import (
    Peer,
    PolicyPeers,
    build_prelabel_network_policy,
    label_studio_pods,
)

pytestmark = pytest.mark.e2e

# One of the project's images with Python in it; it runs as a non-root user.
IMAGE = "localhost/labelloop/operator:local"
PROJECT = "guarded"
PEERS = PolicyPeers(
    operator=Peer(namespace=OPERATOR_NAMESPACE, pod_labels={"app.kubernetes.io/name": "labelloop"})
)
# Asks the URL (argv[1]) until it answers or argv[2] seconds have passed, a line per attempt:
# `answered <status>`, or `unanswered <why>` when the connection is refused or times out.
CLIENT = """
import sys, time, urllib.request
url, seconds = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + seconds
while True:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            print("answered", answer.status, flush=True)
            break
    except OSError as error:
        print("unanswered", error, flush=True)
    if time.monotonic() >= deadline:
        break
    time.sleep(1)
"""
# The firewall learns of a new pod's address from the API server: an allowed client may be
# turned away for a moment after it starts, so it asks until this many seconds have passed.
ALLOWED_PATIENCE = 60
# Every attempt of a client outside the policy, for this long, must go unanswered.
REFUSED_FOR = 10


def start_server(cluster: Cluster, namespace: str, pod_labels: dict[str, str]) -> str:
    """A plain HTTP server on the prelabel port, Ready once the kubelet's probe (from this
    host) reaches it; its pod's address."""
    port = prelabel.PORT
    pod = real_node_pod(
        "prelabel", IMAGE, ["-m", "http.server", str(port)], command=["python"], labels=pod_labels
    )
    pod["spec"]["containers"][0]["readinessProbe"] = {
        "tcpSocket": {"port": port},
        "periodSeconds": 1,
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))

    def ready_ip() -> str | None:
        found = get(cluster, "pod", "prelabel", namespace)
        return found["status"]["podIP"] if found and ready(found) else None

    return wait_for(ready_ip, timeout=120, interval=1, what="the prelabel server pod Ready")


def client(name: str, pod_labels: dict[str, str], url: str, seconds: int) -> dict[str, Any]:
    return real_node_pod(
        name,
        IMAGE,
        ["-c", CLIENT, url, str(seconds)],
        command=["python"],
        labels=pod_labels,
    )


def test_only_the_pods_a_prelabel_policy_names_reach_the_server(
    cluster: Cluster, restricted_namespace: str
) -> None:
    namespace = restricted_namespace
    owner = Owner("PrelabelService", "sentiment", namespace, str(uuid.uuid4()))
    policy = build_prelabel_network_policy(owner, PEERS, PROJECT)
    # No PrelabelService owns it here, and the garbage collector deletes what a missing owner
    # owns.
    del policy["metadata"]["ownerReferences"]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(policy))
    ip = start_server(cluster, namespace, labels(owner, prelabel.COMPONENT))
    url = f"http://{ip}:{prelabel.PORT}/"

    # The project's Label Studio is let in.
    allowed = run_pod(
        cluster,
        namespace,
        client("label-studio", label_studio_pods(PROJECT), url, ALLOWED_PATIENCE),
    )
    assert allowed.splitlines()[-1] == "answered 200", allowed

    # Any other pod, even in the same namespace, is not answered.
    outsider = run_pod(
        cluster, namespace, client("outsider", {"app": "outsider"}, url, REFUSED_FOR)
    )
    attempts = outsider.splitlines()
    assert attempts and all(line.startswith("unanswered ") for line in attempts), outsider

    # This host still is, as the kubelet's probes are.
    assert httpx.get(url, timeout=10).status_code == 200
