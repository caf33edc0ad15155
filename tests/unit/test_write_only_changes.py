"""Writes only what changed: children compared before a write, status merged before a patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labelloop.controllers.merge_patch import changes, merged
from labelloop.resources.common import Owner
from labelloop.resources.compare import FINGERPRINT_ANNOTATION, fingerprinted, needs_update
from labelloop.resources.prelabel import build_service

SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "svc",
        "namespace": "ml",
        "labels": {"app": "x"},
        "ownerReferences": [{"kind": "PrelabelService", "name": "p", "uid": "u"}],
    },
    "spec": {
        "selector": {"app": "x"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        "publishNotReadyAddresses": False,
    },
}


def stored(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` as the API server returns it: defaults filled in, zero values left out."""
    out = copy.deepcopy(manifest)
    out["metadata"].update(
        uid="0000", resourceVersion="7", creationTimestamp="2025-01-01T00:00:00Z"
    )
    out["spec"].pop("publishNotReadyAddresses")
    out["spec"].update(clusterIP="10.0.0.7", type="ClusterIP", sessionAffinity="None")
    out["spec"]["ports"][0]["protocol"] = "TCP"
    out["status"] = {"loadBalancer": {}}
    return out


def edited(manifest: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return out


@pytest.mark.parametrize(
    ("case", "existing", "update"),
    [
        ("as stored, with the server's defaults", stored(SERVICE), False),
        (
            "a label another manager added",
            edited(stored(SERVICE), "metadata.labels", {"app": "x", "team": "a"}),
            False,
        ),
        (
            "our label changed by hand",
            edited(stored(SERVICE), "metadata.labels", {"app": "y"}),
            True,
        ),
        ("a port changed", edited(stored(SERVICE), "spec.ports.0.port", 81), True),
        (
            "a port added",
            edited(stored(SERVICE), "spec.ports", [*SERVICE["spec"]["ports"], {"port": 9}]),
            True,
        ),
        (
            "a stated false now true",
            edited(stored(SERVICE), "spec.publishNotReadyAddresses", True),
            True,
        ),
        ("a selector key gone", edited(stored(SERVICE), "spec.selector", {}), True),
        ("the owner reference gone", edited(stored(SERVICE), "metadata.ownerReferences", []), True),
        ("an int where a name was", edited(stored(SERVICE), "spec.ports.0.targetPort", 8080), True),
    ],
)
def test_a_child_is_written_only_when_a_field_it_states_differs(
    case: str, existing: dict[str, Any], update: bool
) -> None:
    assert needs_update(SERVICE, existing) is update, case


DEPLOYMENT_RESOURCES: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d"},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "c", "resources": {"limits": {"memory": "1024Mi", "cpu": "0.5"}}}
                ]
            }
        }
    },
}


@pytest.mark.parametrize(
    ("memory", "cpu", "update"),
    [
        ("1Gi", "500m", False),  # the API server's canonical form of the same quantities
        ("1024Mi", "0.5", False),
        ("2Gi", "500m", True),
        ("1Gi", "1", True),
    ],
)
def test_resource_quantities_compare_by_value(memory: str, cpu: str, update: bool) -> None:
    existing = copy.deepcopy(DEPLOYMENT_RESOURCES)
    container = existing["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"] = {"memory": memory, "cpu": cpu}
    container["imagePullPolicy"] = "IfNotPresent"
    assert needs_update(DEPLOYMENT_RESOURCES, existing) is update


def test_quantity_like_text_outside_resources_compares_as_text() -> None:
    desired = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {"v": "1Gi"}}
    existing = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {"v": "1024Mi"}}
    assert needs_update(desired, existing)


def test_a_field_the_operator_stops_stating_changes_the_fingerprint() -> None:
    """Serving every version drops the version from the selector: only the fingerprint can
    tell, since the stored selector still holds every key the new manifest states."""
    owner = Owner("PrelabelService", "reviews", "ml", "uid-1")
    one = fingerprinted(build_service(owner, "v1", serve_all_versions=False))
    every = fingerprinted(build_service(owner, "v1", serve_all_versions=True))
    assert set(every["spec"]["selector"]) < set(one["spec"]["selector"])
    existing = copy.deepcopy(one)
    assert not needs_update(one, existing)
    assert needs_update(every, existing)
    assert existing["metadata"]["annotations"][FINGERPRINT_ANNOTATION]
    assert fingerprinted(build_service(owner, "v1", serve_all_versions=False)) == one


@pytest.mark.parametrize(
    ("target", "patch", "result", "changed"),
    [
        ({"phase": "Running"}, {"phase": "Running"}, {"phase": "Running"}, False),
        ({"phase": "Running"}, {"phase": "Succeeded"}, {"phase": "Succeeded"}, True),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}, False),
        ({"a": {"b": 1, "c": 2}}, {"a": {"c": None}}, {"a": {"b": 1}}, True),
        ({"a": 1}, {"gone": None}, {"a": 1}, False),  # clearing what is not there
        ({"l": [1, 2]}, {"l": [1, 2]}, {"l": [1, 2]}, False),
        ({"l": [1, 2]}, {"l": [2, 1]}, {"l": [2, 1]}, True),  # lists replace, in order
        ({}, {"conditions": []}, {"conditions": []}, True),
        # The API server drops nulls inside list items: stored without them is unchanged.
        ({"l": [{"a": 1}]}, {"l": [{"a": 1, "b": None}]}, {"l": [{"a": 1}]}, False),
        ({"l": [{"a": 1}]}, {"l": [{"a": 1, "b": {"c": None}}]}, {"l": [{"a": 1, "b": {}}]}, True),
    ],
)
def test_a_status_patch_changes_something_only_when_merging_it_does(
    target: dict[str, Any], patch: dict[str, Any], result: dict[str, Any], changed: bool
) -> None:
    assert merged(target, patch) == result
    assert changes(target, patch) is changed
