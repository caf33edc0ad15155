"""The operator's metrics: the loop's figures read off each kind's status, their exposition,
and the Label Studio client's request counts and latency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from labelloop import metrics
from labelloop.api.annotationproject import (
    AnnotationProjectStatus,
    AnnotatorStatus,
    Counts,
    PrelabelStatus,
    QualityViolation,
    VersionAcceptance,
)
from labelloop.api.finetunejob import (
    DatasetSnapshot,
    FineTuneJobStatus,
    Progress,
    PromotionVerdict,
)
from labelloop.api.prelabelservice import PrelabelServiceStatus, VersionStatus
from labelloop.controllers.status_metrics import observe, samples_of
from labelloop.labelstudio.client import LabelStudioClient, MeasuredTransport
from labelloop.labelstudio.errors import LabelStudioUnreachable
from labelloop.metrics import ObjectKey, Sample, StatusGauges

PROJECT = {"namespace": "ml", "project": "reviews"}
V1 = {**PROJECT, "version": "reviews-r1-abc"}


def written(status: Any) -> dict[str, Any]:
    """A status as the operator writes it (by alias, unset fields left out)."""
    dumped: dict[str, Any] = status.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return dumped


def as_dict(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.metric, tuple(s.labels.items())): s.value for s in samples}


def key(metric: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return metric, tuple(labels.items())


def test_a_project_pass_gives_counts_rounds_quality_tiers_and_acceptance_per_version() -> None:
    status = AnnotationProjectStatus(
        counts=Counts(tasks=120, annotated_tasks=40, annotations=55, since_last_training=15),
        rounds=2,
        quality_violations=[
            QualityViolation(label="Neutral", share=0.5, bound="maxShare", limit=0.3)
        ],
        disagreement_count=4,
        annotators=[
            AnnotatorStatus(annotator="1", annotations=30, accuracy=0.97, tier="expert"),
            AnnotatorStatus(annotator="2", annotations=20, accuracy=0.9, tier="standard"),
            AnnotatorStatus(annotator="3", annotations=5, tier="unrated"),
        ],
        prelabels=PrelabelStatus(
            service="reviews-prelabel",
            acceptance=[VersionAcceptance(model_version="reviews-r1-abc", accepted=8, reviewed=10)],
        ),
    )
    got = as_dict(samples_of("AnnotationProject", "ml", "reviews", {}, written(status)))
    assert got == {
        key("labelloop_project_tasks", PROJECT): 120,
        key("labelloop_project_annotated_tasks", PROJECT): 40,
        key("labelloop_project_annotations", PROJECT): 55,
        key("labelloop_project_annotations_since_last_round", PROJECT): 15,
        key("labelloop_project_quality_violations", PROJECT): 1,
        key("labelloop_project_disagreements", PROJECT): 4,
        key("labelloop_project_annotators", {**PROJECT, "tier": "expert"}): 1,
        key("labelloop_project_annotators", {**PROJECT, "tier": "standard"}): 1,
        key("labelloop_project_annotators", {**PROJECT, "tier": "basic"}): 0,
        key("labelloop_project_annotators", {**PROJECT, "tier": "unrated"}): 1,
        key("labelloop_project_rounds", PROJECT): 2,
        key("labelloop_prelabels_reviewed", V1): 10,
        key("labelloop_prelabels_accepted", V1): 8,
    }


def test_a_project_not_yet_counted_shows_only_its_rounds() -> None:
    got = samples_of("AnnotationProject", "ml", "reviews", {}, {})
    assert got == [Sample("labelloop_project_rounds", PROJECT, 0)]


JOB_SPEC = {
    "annotationProjectRef": {"name": "reviews", "round": 1},
    "resources": {"nodes": 2, "gpusPerNode": 8},
}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(
            FineTuneJobStatus(phase="Pending", model_version="reviews-r1-abc"),
            {key("labelloop_finetunejobs", {**PROJECT, "phase": "Pending"}): 1},
            id="pending",
        ),
        pytest.param(
            FineTuneJobStatus(
                phase="Running",
                model_version="reviews-r1-abc",
                progress=Progress(epoch=1.5, step=30, loss=0.42),
            ),
            {
                key("labelloop_finetunejobs", {**PROJECT, "phase": "Running"}): 1,
                key("labelloop_training_gpus", V1): 16,
                key("labelloop_training_epoch", V1): 1.5,
                key("labelloop_training_loss", V1): 0.42,
            },
            id="running",
        ),
        pytest.param(
            FineTuneJobStatus(
                phase="Succeeded",
                model_version="reviews-r1-abc",
                start_time="2025-01-01T10:00:00Z",
                completion_time="2025-01-01T10:05:30Z",
                dataset=DatasetSnapshot(count=200, hash="h"),
                metrics={"macro_f1": 0.61, "accuracy": 0.7},
                progress=Progress(epoch=3, step=90, loss=0.2),
                promotion=PromotionVerdict(passed=False, reason="macro_f1 below 0.65"),
            ),
            {
                key("labelloop_finetunejobs", {**PROJECT, "phase": "Succeeded"}): 1,
                key("labelloop_model_training_seconds", V1): 330,
                key("labelloop_model_gpu_seconds", V1): 330 * 16,
                key("labelloop_model_training_examples", V1): 200,
                key("labelloop_model_metric", {**V1, "metric": "accuracy"}): 0.7,
                key("labelloop_model_metric", {**V1, "metric": "macro_f1"}): 0.61,
                key("labelloop_model_gate_passed", V1): 0,
            },
            id="succeeded: no live progress, the gate's verdict and the final metrics",
        ),
    ],
)
def test_a_fine_tune_job_gives_its_phase_progress_and_result(
    status: FineTuneJobStatus, expected: dict[Any, float]
) -> None:
    got = samples_of("FineTuneJob", "ml", "reviews-r1", JOB_SPEC, written(status))
    assert as_dict(got) == expected


def test_a_job_trained_on_a_file_belongs_to_no_project() -> None:
    spec = {"dataset": {"uri": "pvc://data/x.jsonl"}}
    got = samples_of("FineTuneJob", "ml", "adhoc", spec, {"phase": "Failed"})
    labels = {"namespace": "ml", "project": "", "phase": "Failed"}
    assert got == [Sample("labelloop_finetunejobs", labels, 1)]


def test_a_prelabel_service_gives_each_versions_replicas_traffic_accuracy_and_role() -> None:
    status = PrelabelServiceStatus(
        active_version="reviews-r1-abc",
        versions=[
            VersionStatus(
                version="reviews-r1-abc", replicas=2, ready_replicas=2, traffic=75, state="Active"
            ),
            VersionStatus(
                version="reviews-r2-def",
                replicas=1,
                ready_replicas=1,
                traffic=25,
                prelabel_accuracy=0.4,
                state="Progressing",
            ),
        ],
    )
    spec = {"annotationProjectRef": {"name": "reviews"}}
    got = as_dict(samples_of("PrelabelService", "ml", "pls", spec, written(status)))
    a = {**PROJECT, "service": "pls", "version": "reviews-r1-abc"}
    b = {**PROJECT, "service": "pls", "version": "reviews-r2-def"}
    assert got == {
        key("labelloop_prelabel_version_replicas", a): 2,
        key("labelloop_prelabel_version_ready_replicas", a): 2,
        key("labelloop_prelabel_version_traffic_percent", a): 75,
        key("labelloop_prelabel_version_state", {**a, "state": "Active"}): 1,
        key("labelloop_prelabel_version_replicas", b): 1,
        key("labelloop_prelabel_version_ready_replicas", b): 1,
        key("labelloop_prelabel_version_traffic_percent", b): 25,
        key("labelloop_prelabel_version_accuracy", b): 0.4,
        key("labelloop_prelabel_version_state", {**b, "state": "Progressing"}): 1,
    }


def test_a_status_its_model_refuses_gives_no_samples() -> None:
    assert samples_of("FineTuneJob", "ml", "j", JOB_SPEC, {"phase": "Exploded"}) == []


def exposition(gauges: StatusGauges) -> str:
    registry = CollectorRegistry()
    registry.register(gauges)
    return generate_latest(registry).decode()


def job_event(name: str, phase: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": JOB_SPEC,
        "status": {"phase": phase, "modelVersion": f"{name}-v"},
    }


def test_watch_events_replace_an_objects_samples_sum_per_series_and_forget_deleted_ones() -> None:
    gauges = StatusGauges(metrics.STATUS_GAUGES)
    succeeded = 'labelloop_finetunejobs{namespace="ml",phase="Succeeded",project="reviews"}'
    observe("FineTuneJob", "ADDED", job_event("reviews-r1", "Succeeded"), gauges)
    observe("FineTuneJob", "ADDED", job_event("reviews-r2", "Running"), gauges)
    assert f"{succeeded} 1.0" in exposition(gauges)
    observe("FineTuneJob", "MODIFIED", job_event("reviews-r2", "Succeeded"), gauges)
    text = exposition(gauges)
    assert f"{succeeded} 2.0" in text
    assert 'phase="Running"' not in text  # r2's earlier sample was replaced, not added
    observe("FineTuneJob", "DELETED", job_event("reviews-r1", "Succeeded"), gauges)
    assert f"{succeeded} 1.0" in exposition(gauges)


def test_samples_outside_the_declared_gauges_are_refused() -> None:
    gauges = StatusGauges(metrics.STATUS_GAUGES)
    where = ObjectKey("FineTuneJob", "ml", "j")
    with pytest.raises(ValueError, match=r"not one of metrics\.STATUS_GAUGES"):
        gauges.set(where, [Sample("labelloop_unknown", {}, 1)])
    with pytest.raises(ValueError, match="takes the labels"):
        gauges.set(where, [Sample("labelloop_project_rounds", {"task": "12"}, 1)])


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/api/projects/12/", "/api/projects/{id}/"),
        ("/api/tasks/7/annotations/", "/api/tasks/{id}/annotations/"),
        ("/api/projects/12/import?commit_to_project=true", "/api/projects/{id}/import"),
        ("/api/ml/3", "/api/ml/{id}"),
        ("/health", "/health"),
        ("/api/projects/r2d2/", "/api/projects/r2d2/"),
    ],
)
def test_label_studio_endpoints_leave_ids_out(path: str, endpoint: str) -> None:
    assert metrics.endpoint_of(path) == endpoint


def sample(name: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_every_label_studio_request_is_counted_and_timed_by_endpoint_and_code() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/projects/41/":
            return httpx.Response(503, json={"detail": "down"})
        return httpx.Response(200, json={})

    ok = {"method": "GET", "endpoint": "/health", "code": "200"}
    failed = {"method": "GET", "endpoint": "/api/projects/{id}/", "code": "503"}
    error = {"method": "GET", "endpoint": "/api/projects/{id}/", "reason": "503"}
    timing = {"method": "GET", "endpoint": "/health"}
    before = [
        sample("labelloop_label_studio_requests_total", ok),
        sample("labelloop_label_studio_requests_total", failed),
        sample("labelloop_label_studio_request_errors_total", error),
        sample("labelloop_label_studio_request_duration_seconds_count", timing),
    ]
    with httpx.Client(
        base_url="http://ls.test", transport=MeasuredTransport(httpx.MockTransport(answer))
    ) as client:
        client.get("/health")
        client.get("/api/projects/41/")
    after = [
        sample("labelloop_label_studio_requests_total", ok),
        sample("labelloop_label_studio_requests_total", failed),
        sample("labelloop_label_studio_request_errors_total", error),
        sample("labelloop_label_studio_request_duration_seconds_count", timing),
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]


def test_a_label_studio_that_does_not_answer_counts_as_a_transport_error() -> None:
    labels = {"method": "GET", "endpoint": "/health", "reason": "ConnectError"}
    before = sample("labelloop_label_studio_request_errors_total", labels)
    # Nothing listens on port 9 of the loopback: the connection is refused at once.
    with (
        LabelStudioClient("http://127.0.0.1:9", "token", timeout=2, retries=1, backoff=0) as ls,
        pytest.raises(LabelStudioUnreachable),
    ):
        ls.health()
    # The first try and its one retry.
    assert sample("labelloop_label_studio_request_errors_total", labels) - before == 2


def test_exported_names_cover_counters_histograms_and_the_status_gauges() -> None:
    names = metrics.exported_names()
    assert {
        "labelloop_reconciles_total",
        "labelloop_reconcile_duration_seconds_bucket",
        "labelloop_decisions_total",
        "labelloop_label_studio_request_duration_seconds_count",
        *metrics.STATUS_GAUGES,
    } <= names
    assert "labelloop_unknown" not in names
