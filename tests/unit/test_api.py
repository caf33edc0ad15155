"""The API models: the design's manifests parse, defaults fill in, bad specs are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelloop.api import (
    FineTuneJobSpec,
    ManifestError,
    PrelabelServiceSpec,
    parse_manifest,
    parse_manifests,
)
from labelloop.api.annotationproject import AnnotationProjectSpec
from manifest_cases import BASES, INVALID_CASES, InvalidCase, fine_tune_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_design_manifests_parse_as_written() -> None:
    manifests = parse_manifests((EXAMPLES / "20-reviews.yaml").read_text())
    assert [(m.kind.kind, m.name, m.namespace) for m in manifests] == [
        ("AnnotationProject", "reviews", "ml"),
        ("FineTuneJob", "reviews-r3", "ml"),
        ("PrelabelService", "reviews-prelabel", "ml"),
    ]
    project, job, service = (m.spec for m in manifests)
    assert isinstance(project, AnnotationProjectSpec)
    assert project.label_studio.managed is not None
    assert project.label_studio.managed.autoscaling is not None
    assert project.label_studio.managed.autoscaling.target_cpu_utilization_percentage == 70
    assert isinstance(job, FineTuneJobSpec)
    assert job.resources.gpu.product == "NVIDIA-H100-80GB-HBM3"
    assert job.method.lora.target_modules == ["query", "value"]
    assert isinstance(service, PrelabelServiceSpec)
    assert service.rollout.steps == [25, 50, 100]


@pytest.mark.parametrize("kind", sorted(BASES))
def test_minimal_manifests_parse(kind: str) -> None:
    assert parse_manifest(BASES[kind]()).kind.kind == kind


def test_omitted_blocks_take_their_defaults() -> None:
    spec = parse_manifest(fine_tune_job()).spec
    assert isinstance(spec, FineTuneJobSpec)
    hp = spec.hyperparameters
    assert (hp.learning_rate, hp.lr_scheduler, hp.early_stopping.patience) == (1e-3, "cosine", 3)
    # The epoch kept is the promotion gate's pick: macro-F1 without a gate.
    assert hp.early_stopping.metric is None
    assert hp.early_stopping.monitored(None) == "f1"
    assert hp.batch_size == "auto"
    res = spec.resources
    assert (res.nodes, res.gpus_per_node, res.gpu.min_memory_gib) == (1, 1, 24)


def test_wire_form_round_trips() -> None:
    spec = parse_manifest(fine_tune_job()).spec
    wire = spec.to_wire()
    assert wire["hyperparameters"]["learningRate"] == 1e-3
    assert wire["resources"]["gpu"]["minMemoryGiB"] == 24
    assert FineTuneJobSpec.model_validate(wire) == spec


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.id)
def test_invalid_manifest_is_refused_naming_the_field(case: InvalidCase) -> None:
    with pytest.raises(ManifestError) as refused:
        parse_manifest(case.manifest())
    problems = refused.value.problems
    assert any(p.startswith(f"{case.field}: ") and case.message in p for p in problems), problems


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
            "apiVersion: must be",
        ),
        (
            {"apiVersion": "labelloop.io/v1alpha1", "kind": "Trainer", "metadata": {"name": "x"}},
            "kind: must be one of AnnotationProject, FineTuneJob, PrelabelService",
        ),
        ({"apiVersion": "labelloop.io/v1alpha1", "kind": "FineTuneJob"}, "metadata.name: required"),
    ],
)
def test_envelope_errors(obj: dict[str, object], problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        parse_manifest(obj)


def test_error_lists_every_problem_at_once() -> None:
    bad = fine_tune_job()
    bad["spec"]["hyperparameters"] = {"warmupRatio": 0.9, "learningRate": 2}
    with pytest.raises(ManifestError) as refused:
        parse_manifest(bad)
    fields = sorted(p.split(":")[0] for p in refused.value.problems)
    assert fields == ["spec.hyperparameters.learningRate", "spec.hyperparameters.warmupRatio"]
