"""The operator acts on events, not on a timer, and writes nothing when nothing changed.

The session's operator is replaced here by one whose resync and Label Studio poll are an
hour, far longer than these tests: whatever it does within them, an event made it do.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.cluster import Cluster
from fixtures.labelstudio import free_port
from fixtures.operator import (
    OperatorProcess,
    apply,
    bound_claim,
    condition,
    eventually,
    get,
    status_of,
)

pytestmark = pytest.mark.cluster

HOUR = 3600
# kwok's stage turns this annotation into rank 0's result (hack/kwok-stages.yaml).
RESULT_ANNOTATION = "labelloop.io/kwok-result"


class PacedOperator(OperatorProcess):
    """An operator that resyncs and polls Label Studio only every hour, with its metrics."""

    def __init__(self, session: OperatorProcess, log: Path) -> None:
        self.metrics_port = free_port()
        super().__init__(
            session.kubeconfig,
            log,
            args=[
                f"--resync-seconds={HOUR}",
                f"--label-studio-poll-seconds={HOUR}",
                f"--metrics-listen=127.0.0.1:{self.metrics_port}",
            ],
        )

    def reconciles(self, kind: str) -> float:
        """Passes over objects of `kind` so far (labelloop_reconciles_total, every outcome)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("labelloop_reconciles_total{") and f'kind="{kind}"' in line
        )


@pytest.fixture
def paced(operator: OperatorProcess, tmp_path: Path) -> Iterator[PacedOperator]:
    operator.stop()
    process = PacedOperator(operator, tmp_path / "paced-operator.log")
    try:
        process.start()
        yield process
    finally:
        process.stop()
        operator.start()


def fine_tune_job(name: str, version: str) -> dict[str, Any]:
    result = {"modelVersion": version, "artifactUri": f"pvc://models/out/{version}"}
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "dataset": {"uri": "pvc://data/train.jsonl"},
            "baseModel": {"uri": "pvc://models/base"},
            "output": {"uri": "pvc://models/out"},
            "resources": {"gpusPerNode": 0},
            "podMetadata": {"annotations": {RESULT_ANNOTATION: json.dumps(result)}},
        },
    }


def prelabel_service(name: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "PrelabelService",
        "metadata": {"name": name},
        "spec": {"annotationProjectRef": {"name": "reviews"}, "model": model},
    }


def serving(kube: Cluster, ns: str, name: str, version: str) -> dict[str, Any] | None:
    status = status_of(kube, "pls", name, ns)
    ready = condition(status, "Ready").get("status") == "True"
    return status if ready and status.get("activeVersion") == version else None


def replicas(kube: Cluster, ns: str, deployment: str) -> int | None:
    found = get(kube, "deployment", deployment, ns)
    return None if found is None else int(found["spec"].get("replicas") or 0)


def test_changes_of_children_and_of_objects_read_wake_their_owner_without_a_timer(
    kube: Cluster, paced: PacedOperator, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "data")
    bound_claim(kube, ns, "models")
    apply(kube, ns, prelabel_service("fixed", {"version": "v1", "uri": "pvc://models/out/v1"}))
    eventually(lambda: serving(kube, ns, "fixed", "v1"), "version v1 served", 60)
    deployment = "fixed-v1"
    assert replicas(kube, ns, deployment) == 1

    # A child changed by someone else: its owner puts it back at once.
    kube.kubectl("scale", "deployment", deployment, "-n", ns, "--replicas=0")
    eventually(lambda: replicas(kube, ns, deployment) == 1, "the replicas put back", 20)
    # A child deleted: made again.
    before = (get(kube, "deployment", deployment, ns) or {})["metadata"]["uid"]
    kube.kubectl("delete", "deployment", deployment, "-n", ns)

    def made_again() -> bool:
        found = get(kube, "deployment", deployment, ns)
        return found is not None and found["metadata"]["uid"] != before

    eventually(made_again, "the Deployment made again", 20)

    # An object read: a FineTuneJob finishing wakes the PrelabelService that serves it.
    apply(kube, ns, prelabel_service("follows", {"fineTuneJobRef": {"name": "train"}}))
    eventually(
        lambda: (
            condition(status_of(kube, "pls", "follows", ns), "Reconciling").get("reason")
            == "WaitingForModel"
        ),
        "the service waiting for its model",
        30,
    )
    apply(kube, ns, fine_tune_job("train", "v2"))
    eventually(lambda: serving(kube, ns, "follows", "v2"), "version v2 served", 60)


def test_an_object_that_did_not_change_is_not_written(
    kube: Cluster, paced: PacedOperator, namespace: str
) -> None:
    ns = namespace
    bound_claim(kube, ns, "data")
    bound_claim(kube, ns, "models")
    apply(kube, ns, fine_tune_job("train", "v1"))
    apply(kube, ns, prelabel_service("serve", {"fineTuneJobRef": {"name": "train"}}))
    eventually(lambda: serving(kube, ns, "serve", "v1"), "version v1 served", 60)

    def versions() -> dict[str, str]:
        """The resource version of every object the operator made or writes."""
        found = {}
        for kind, name in (
            ("finetunejob", "train"),
            ("prelabelservice", "serve"),
            ("job", "train"),
            ("service", "train"),
            ("configmap", "train"),
            ("deployment", "serve-v1"),
            ("service", "serve"),
        ):
            obj = get(kube, kind, name, ns)
            assert obj is not None, f"{kind} {name}"
            found[f"{kind}/{name}"] = obj["metadata"]["resourceVersion"]
        return found

    def settled() -> dict[str, str] | None:
        """The versions once two looks a second apart agree: the rollout's writes are done."""
        first = versions()
        time.sleep(1)
        return first if versions() == first else None

    before = eventually(settled, "the objects settled", 30)

    # Passes that find nothing to do: a person's annotation on the service wakes it, one on
    # its Deployment wakes it again (the annotations are writes of their own, counted out).
    passes = paced.reconciles("PrelabelService")
    kube.kubectl("annotate", "prelabelservice", "serve", "-n", ns, "example.com/touched=1")
    kube.kubectl("annotate", "deployment", "serve-v1", "-n", ns, "example.com/touched=1")
    touched = versions()
    eventually(lambda: paced.reconciles("PrelabelService") >= passes + 2, "two passes", 20)
    time.sleep(3)
    assert versions() == touched

    # A restart passes over every unfinished object once more.
    paced.stop()
    paced.start()
    eventually(lambda: paced.reconciles("PrelabelService") >= 1, "a pass after the restart", 30)
    time.sleep(3)  # a pass writes after it is counted
    assert versions() == touched
    untouched = {k: v for k, v in touched.items() if "serve" not in k}
    assert untouched == {k: v for k, v in before.items() if "serve" not in k}
