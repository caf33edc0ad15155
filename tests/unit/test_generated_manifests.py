"""Generated manifests through the API models: each is either a spec that survives its round
trip through the wire form, or refused with every problem naming its field (the control-plane
twin, `tests/cluster/test_generated_manifests_on_server.py`, checks the API server agrees)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from labelloop.api import ManifestError, parse_manifest
from manifest_generation import manifests

pytestmark = pytest.mark.fuzz


@settings(max_examples=2000, deadline=None, database=None)
@given(obj=manifests())
def test_a_manifest_is_a_spec_that_round_trips_or_refused_naming_each_field(
    obj: dict[str, Any],
) -> None:
    try:
        parsed = parse_manifest(obj)
    except ManifestError as refused:
        assert refused.problems
        for problem in refused.problems:
            field, sep, message = problem.partition(": ")
            assert sep and field.startswith("spec") and " " not in field, problem
            assert message.strip(), problem
        return
    spec = parsed.spec
    assert type(spec).model_validate(spec.to_wire()) == spec
