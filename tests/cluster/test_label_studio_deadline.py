"""An AnnotationProject whose Label Studio never answers: Reconciling through the connection
deadline, Stalled after it, and Ready once its URL points at a Label Studio that answers."""

from __future__ import annotations

import json
import secrets
import socket
from typing import Any

import pytest

from fixtures.cluster import Cluster
from fixtures.labelstudio import LabelStudioServer
from fixtures.operator import apply, b64, condition, eventually, get, status_of
from gitops_health import build_kstatus, kstatus

pytestmark = [pytest.mark.cluster, pytest.mark.labelstudio]

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)


def closed_port_url() -> str:
    """A loopback URL nothing listens on: the operator (a local process) is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_label_studio_stalls_after_the_deadline_and_recovers(
    kube: Cluster, namespace: str, label_studio: LabelStudioServer
) -> None:
    ns, dead = namespace, closed_port_url()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "ls-token"},
        "data": {"token": b64(label_studio.token)},
    }
    project = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "wrong-url"},
        "spec": {
            "labelStudio": {"external": {"url": dead}, "connectionDeadlineSeconds": 10},
            "credentialsSecretRef": {"name": "ls-token"},
            "project": {"title": f"deadline {secrets.token_hex(3)}", "labelConfig": CONFIG},
        },
    }
    apply(kube, ns, secret, project)

    def status() -> dict[str, Any]:
        return status_of(kube, "ap", "wrong-url", ns)

    # Within the deadline an outage is a wait, as a passing one should be.
    waiting = eventually(
        lambda: condition(status(), "Reconciling").get("reason") == "LabelStudioUnreachable",
        "Reconciling while unreachable",
    )
    assert waiting
    reachable = condition(status(), "LabelStudioReachable")
    assert reachable["status"] == "False" and dead in reachable["message"]

    def stalled() -> dict[str, Any] | None:
        stall = condition(status(), "Stalled")
        return stall if stall.get("status") == "True" else None

    stall = eventually(stalled, "Stalled after the 10 s connection deadline", 90)
    build_kstatus()
    assert kstatus([get(kube, "ap", "wrong-url", ns) or {}])[0]["status"] == "Failed"
    assert stall["reason"] == "LabelStudioUnreachable"
    assert dead in stall["message"]
    assert "longer than spec.labelStudio.connectionDeadlineSeconds (10s)" in stall["message"]
    # The condition kept the time the outage began, not the time of the latest pass.
    assert (
        reachable["lastTransitionTime"]
        == condition(status(), "LabelStudioReachable")["lastTransitionTime"]
    )

    # The fix: point the project at a Label Studio that answers.
    fixed = {"spec": {"labelStudio": {"external": {"url": label_studio.url}}}}
    kube.kubectl("patch", "ap", "wrong-url", "-n", ns, "--type=merge", "-p", json.dumps(fixed))

    def ready() -> dict[str, Any] | None:
        now = status()
        return now if condition(now, "Ready").get("status") == "True" else None

    recovered = eventually(ready, "Ready once Label Studio answers", 90)
    assert condition(recovered, "Stalled")["status"] == "False"
    assert condition(recovered, "LabelStudioReachable")["status"] == "True"
    assert recovered["labelStudio"]["url"] == label_studio.url
    assert kstatus([get(kube, "ap", "wrong-url", ns) or {}])[0]["status"] == "Current"
