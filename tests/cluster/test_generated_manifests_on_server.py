"""Generated manifests on a real API server: it accepts exactly those the API models accept.

The unit tests hold one table of bad manifests against both (`manifest_cases.py`); these
are Hypothesis' (`manifest_generation.py`), each sent as a server-side dry run, which goes
through the CRD's schema, its CEL rules and strict field validation without storing anything.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fixtures.cluster import Cluster
from labelloop.api import GROUP, KINDS, VERSION, ManifestError, parse_manifest
from manifest_generation import manifests

pytestmark = [pytest.mark.cluster, pytest.mark.fuzz]

PLURALS = {kind.kind: kind.plural for kind in KINDS}


def server_refusal(crds: Cluster, obj: dict[str, Any]) -> str | None:
    """None when the API server would create `obj`, else its message."""
    api = client.CustomObjectsApi(crds.api_client)
    try:
        api.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURALS[obj["kind"]],
            obj,
            dry_run="All",
            field_validation="Strict",
        )
    except ApiException as error:
        if error.status not in (400, 422):  # anything else is not a verdict on the manifest
            raise
        return str(json.loads(error.body or "{}").get("message") or error.body)
    return None


def model_refusal(obj: dict[str, Any]) -> str | None:
    try:
        parse_manifest(obj)
    except ManifestError as refused:
        return str(refused)
    return None


@settings(max_examples=400, deadline=None, database=None)
@given(obj=manifests())
def test_the_server_and_the_models_agree(crds: Cluster, obj: dict[str, Any]) -> None:
    server, models = server_refusal(crds, obj), model_refusal(obj)
    assert (server is None) == (models is None), (
        f"the API server {'accepts' if server is None else 'refuses'} and the models "
        f"{'accept' if models is None else 'refuse'}:\n"
        f"server: {server}\nmodels: {models}\n{json.dumps(obj, indent=1)}"
    )
