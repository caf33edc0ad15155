"""The generated CRDs on a real API server: accepted, documented, defaulted and validating."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cluster import Cluster
from fixtures.operator import eventually
from labelloop.api import KINDS
from manifest_cases import BASES, INVALID_CASES, InvalidCase

pytestmark = pytest.mark.cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _apply(cluster: Cluster, obj: dict[str, Any], namespace: str, *extra: str) -> Any:
    return cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", *extra, input=json.dumps(obj), check=False
    )


def test_crds_are_established(crds: Cluster) -> None:
    for kind in KINDS:
        out = crds.kubectl("get", "crd", kind.crd_name, "-o", "json").stdout
        conditions = {c["type"]: c["status"] for c in json.loads(out)["status"]["conditions"]}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"


def test_kubectl_explain_prints_field_descriptions(crds: Cluster) -> None:
    out = crds.kubectl("explain", "finetunejob.spec.resources.interconnect").stdout
    assert "NVLink domain" in out
    out = crds.kubectl("explain", "ap.spec.labelStudio.managed.database").stdout
    assert "PostgreSQL" in out


def test_design_examples_apply(crds: Cluster, namespace: str) -> None:
    docs = list(yaml.safe_load_all((EXAMPLES / "20-reviews.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        result = _apply(crds, doc, namespace)
        assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", sorted(BASES))
def test_minimal_manifests_apply(crds: Cluster, namespace: str, kind: str) -> None:
    result = _apply(crds, BASES[kind](), namespace)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_server_refuses_invalid_manifest_naming_the_field(crds: Cluster, case: InvalidCase) -> None:
    # A server-side dry run goes through the same schema, CEL and field validation as a real
    # create, without leaving anything behind.
    result = _apply(crds, case.manifest(), "default", "--dry-run=server")
    assert result.returncode != 0, f"{case.id} was accepted"
    message = case.server_message or case.message
    assert case.field in result.stderr and message in result.stderr, result.stderr


def test_server_fills_in_defaults(crds: Cluster, namespace: str) -> None:
    obj = BASES["FineTuneJob"]("defaults")
    _apply(crds, obj, namespace)
    stored = json.loads(
        crds.kubectl("get", "ftj", "defaults", "-n", namespace, "-o", "json").stdout
    )
    spec = stored["spec"]
    assert spec["hyperparameters"]["learningRate"] == 1e-3
    assert spec["hyperparameters"]["lrScheduler"] == "cosine"
    assert spec["hyperparameters"]["earlyStopping"]["patience"] == 3
    assert spec["resources"]["nodes"] == 1
    assert spec["resources"]["gpusPerNode"] == 1
    assert spec["resources"]["gpu"]["minMemoryGiB"] == 24


def test_spec_change_bumps_generation_but_status_patch_does_not(
    crds: Cluster, namespace: str
) -> None:
    _apply(crds, BASES["PrelabelService"]("generations"), namespace)

    def read() -> dict[str, Any]:
        out = crds.kubectl("get", "pls", "generations", "-n", namespace, "-o", "json").stdout
        value: dict[str, Any] = json.loads(out)
        return value

    def patch(body: dict[str, Any], *extra: str) -> None:
        crds.kubectl(
            "patch",
            "pls",
            "generations",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            json.dumps(body),
            *extra,
        )

    first = read()["metadata"]["generation"]
    patch({"status": {"observedGeneration": first}}, "--subresource=status")
    assert read()["metadata"]["generation"] == first
    patch({"spec": {"replicas": 3}})
    assert read()["metadata"]["generation"] == first + 1
    # A status written through the main resource is ignored: status is a subresource.
    patch({"status": {"activeVersion": "never-written"}})
    assert read().get("status", {}).get("activeVersion") != "never-written"


def test_fine_tune_job_spec_is_immutable(crds: Cluster, namespace: str) -> None:
    _apply(crds, BASES["FineTuneJob"]("frozen"), namespace)
    result = crds.kubectl(
        "patch",
        "ftj",
        "frozen",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"hyperparameters": {"epochs": 7}}}),
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable: create a new FineTuneJob" in result.stderr


def test_printer_columns_show(kube: Cluster, namespace: str) -> None:
    # The operator fills in the status columns: queued for Kueue, the Job stays Pending.
    obj = BASES["FineTuneJob"]("columns")
    obj["spec"]["resources"] = {"nodes": 2, "gpusPerNode": 4, "queueName": "gpu-team"}
    _apply(kube, obj, namespace)

    def row() -> list[str] | None:
        lines = kube.kubectl("get", "ftj", "-n", namespace).stdout.splitlines()
        cells = lines[1].split()
        return (
            lines[0].split()[:6] + cells if cells[1:2] == ["Pending"] and len(cells) > 5 else None
        )

    cells = eventually(row, "the operator's status in the columns")
    assert cells[:6] == ["NAME", "PHASE", "PROJECT", "NODES", "GPUS/NODE", "VERSION"]
    assert cells[6:10] == ["columns", "Pending", "2", "4"]
    assert cells[10].startswith("columns-")
    wide = kube.kubectl("get", "labelloop", "-n", namespace, "-o", "wide").stdout
    assert "columns" in wide and "EPOCH" in wide
