"""Objects and namespaces can be deleted while the operator is away: it leaves no finalizer."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from kubernetes import client

from fixtures.cluster import Cluster, wait_for
from fixtures.operator import OperatorProcess, apply, status_of
from labelloop import controllers
from labelloop.operator import release_on_delete
from manifest_cases import LABEL_CONFIG

pytestmark = pytest.mark.cluster


def test_no_handler_of_the_operator_asks_for_a_finalizer() -> None:
    assert controllers  # registered on import
    registry = kopf.get_default_registry()
    release_on_delete(registry)
    spawning = registry._spawning.get_all_handlers()
    assert spawning, "the periodic reconciles are timers"
    assert not any(h.requires_finalizer for h in spawning)
    assert not any(h.requires_finalizer for h in registry._changing.get_all_handlers())


def test_namespace_deletion_completes_with_the_operator_stopped(
    kube: Cluster, operator: OperatorProcess
) -> None:
    core = client.CoreV1Api(kube.api_client)
    name = "t-operator-gone"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    project: dict[str, Any] = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "orphan"},
        "spec": {
            "labelStudio": {"external": {"url": "http://label-studio.invalid:8080"}},
            "credentialsSecretRef": {"name": "orphan-token"},
            "project": {"title": "Orphan", "labelConfig": LABEL_CONFIG},
        },
    }
    apply(kube, name, project)
    # The operator has seen it (a status with conditions) before it goes away.
    wait_for(
        lambda: status_of(kube, "annotationproject", "orphan", name).get("conditions"),
        timeout=60,
        what="the operator's first status",
    )
    finalizers = kube.kubectl(
        "get", "annotationproject", "orphan", "-n", name, "-o", "jsonpath={.metadata.finalizers}"
    ).stdout
    assert finalizers == ""
    operator.stop()
    try:
        core.delete_namespace(name)

        def gone() -> bool:
            return name not in {n.metadata.name for n in core.list_namespace().items}

        wait_for(gone, timeout=90, interval=1, what=f"namespace {name} to be deleted")
    finally:
        operator.start()
