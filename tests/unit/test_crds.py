"""The CRDs in `crds/` are what the models generate, and have the shape Kubernetes needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labelloop.api import KINDS
from labelloop.api.crd import crd_manifest, render_crds
from labelloop.api.finetunejob import Hyperparameters

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("directory", ["crds", "charts/labelloop/crds"])
def test_crds_directory_is_up_to_date(directory: str) -> None:
    rendered = render_crds()
    on_disk = {p.name: p.read_text() for p in (REPO / directory).glob("*.yaml")}
    assert on_disk == rendered, f"{directory}/ is stale: run `make crds`"


def _walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, prop in schema.get("properties", {}).items():
        found += _walk(prop, f"{path}.{name}")
    if "items" in schema:
        found += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _walk(schema["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_is_typed_and_described(kind: Any) -> None:
    version = crd_manifest(kind)["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, schema in _walk(root["properties"][part], part):
            is_property = not path.endswith(("[]", "}"))
            if is_property:
                assert schema.get("description"), f"{path} has no description"
            typed = "type" in schema or schema.get("x-kubernetes-int-or-string")
            assert typed or schema.get("x-kubernetes-preserve-unknown-fields"), f"{path} untyped"
            assert "$ref" not in schema and "anyOf" not in schema, f"{path} is not structural"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_names_and_columns(kind: Any) -> None:
    crd = crd_manifest(kind)
    names = crd["spec"]["names"]
    assert names["categories"] == ["labelloop"]
    assert names["shortNames"] == list(kind.short_names)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_an_omitted_block_defaults_to_the_models_defaults() -> None:
    (ftj,) = (k for k in KINDS if k.kind == "FineTuneJob")
    root = crd_manifest(ftj)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    hp = root["properties"]["spec"]["properties"]["hyperparameters"]
    assert hp["default"] == Hyperparameters().to_wire()
    assert hp["default"]["learningRate"] == 1e-3
    assert hp["properties"]["earlyStopping"]["properties"]["patience"]["default"] == 3
