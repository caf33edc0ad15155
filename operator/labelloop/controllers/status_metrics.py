"""The loop's figures in `labelloop.metrics`, read off each object's status in one place.

Every status the operator (or a training pod) writes comes back as a watch event; the event
handler below turns it, through the kind's typed status model, into the samples of
`metrics.STATUS_GAUGES` and replaces what was known of that object. Reading the stored
status, rather than what one pass wrote, keeps the figures level-triggered like the loop: a
restarted operator lists every object and shows the same figures, finished FineTuneJobs
included, and a deleted object's series go with it.

`samples_of` is a pure function of the kind, the object's identity, its spec and its status,
tested by table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import kopf
import pydantic

from .. import metrics
from ..api import ANNOTATION_PROJECT, FINE_TUNE_JOB, GROUP, KINDS, PRELABEL_SERVICE, VERSION
from ..api.annotationproject import AnnotationProjectStatus
from ..api.finetunejob import FineTuneJobStatus, Resources
from ..api.prelabelservice import PrelabelServiceStatus
from ..loop import annotators
from ..metrics import ObjectKey, Sample

logger = logging.getLogger(__name__)


def project_of(kind: str, name: str, spec: Mapping[str, Any]) -> str:
    """The AnnotationProject an object belongs to: itself, or the one its spec names (empty
    for a FineTuneJob trained on a dataset file)."""
    if kind == ANNOTATION_PROJECT.kind:
        return name
    ref = spec.get("annotationProjectRef")
    return str(ref.get("name") or "") if isinstance(ref, Mapping) else ""


def samples_of(
    kind: str, namespace: str, name: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> list[Sample]:
    """The samples an object's status gives. A status its model refuses gives none."""
    project = project_of(kind, name, spec)
    try:
        if kind == ANNOTATION_PROJECT.kind:
            typed_project = AnnotationProjectStatus.model_validate(dict(status))
            return list(_project_samples(namespace, project, typed_project))
        if kind == FINE_TUNE_JOB.kind:
            typed_job = FineTuneJobStatus.model_validate(dict(status))
            resources = Resources.model_validate(spec.get("resources") or {})
            gpus = resources.nodes * resources.gpus_per_node
            return list(_job_samples(namespace, project, typed_job, gpus))
        if kind == PRELABEL_SERVICE.kind:
            typed_service = PrelabelServiceStatus.model_validate(dict(status))
            return list(_service_samples(namespace, project, name, typed_service))
    except pydantic.ValidationError as error:
        logger.warning(
            "%s %s/%s: no metrics from an invalid status: %s", kind, namespace, name, error
        )
        return []
    raise ValueError(f"no metrics for kind {kind}")


def _project_samples(
    namespace: str, project: str, status: AnnotationProjectStatus
) -> Iterator[Sample]:
    labels = {"namespace": namespace, "project": project}

    def gauge(metric: str, value: float) -> Sample:
        return Sample(metric, labels, value)

    if status.counts is not None:
        yield gauge("labelloop_project_tasks", status.counts.tasks)
        yield gauge("labelloop_project_annotated_tasks", status.counts.annotated_tasks)
        yield gauge("labelloop_project_annotations", status.counts.annotations)
        yield gauge(
            "labelloop_project_annotations_since_last_round", status.counts.since_last_training
        )
        # Judged in the same pass as the counts; absent before the first one.
        yield gauge("labelloop_project_quality_violations", len(status.quality_violations))
        yield gauge("labelloop_project_disagreements", status.disagreement_count)
        for tier in annotators.TIERS:
            count = sum(a.tier == tier for a in status.annotators)
            yield Sample("labelloop_project_annotators", {**labels, "tier": tier}, count)
    yield gauge("labelloop_project_rounds", status.rounds)
    if status.prelabels is not None:
        for seen in status.prelabels.acceptance:
            version = {**labels, "version": seen.model_version}
            yield Sample("labelloop_prelabels_reviewed", version, seen.reviewed)
            yield Sample("labelloop_prelabels_accepted", version, seen.accepted)


def _job_samples(
    namespace: str, project: str, status: FineTuneJobStatus, gpus: int
) -> Iterator[Sample]:
    if status.phase is not None:
        phase = {"namespace": namespace, "project": project, "phase": status.phase}
        yield Sample("labelloop_finetunejobs", phase, 1)
    if status.model_version is None:
        return
    labels = {"namespace": namespace, "project": project, "version": status.model_version}
    if status.phase == "Running":
        yield Sample("labelloop_training_gpus", labels, gpus)
        if status.progress is not None:
            yield Sample("labelloop_training_epoch", labels, status.progress.epoch)
            if status.progress.loss is not None:
                yield Sample("labelloop_training_loss", labels, status.progress.loss)
    if status.phase in ("Succeeded", "Failed") and status.start_time and status.completion_time:
        seconds = (_time(status.completion_time) - _time(status.start_time)).total_seconds()
        yield Sample("labelloop_model_training_seconds", labels, seconds)
        yield Sample("labelloop_model_gpu_seconds", labels, seconds * gpus)
    if status.dataset is not None:
        yield Sample("labelloop_model_training_examples", labels, status.dataset.count)
    for metric, value in sorted(status.metrics.items()):
        yield Sample("labelloop_model_metric", {**labels, "metric": metric}, value)
    if status.promotion is not None:
        yield Sample("labelloop_model_gate_passed", labels, float(status.promotion.passed))


def _service_samples(
    namespace: str, project: str, service: str, status: PrelabelServiceStatus
) -> Iterator[Sample]:
    for v in status.versions:
        labels = {
            "namespace": namespace,
            "project": project,
            "service": service,
            "version": v.version,
        }
        yield Sample("labelloop_prelabel_version_replicas", labels, v.replicas)
        yield Sample("labelloop_prelabel_version_ready_replicas", labels, v.ready_replicas)
        yield Sample("labelloop_prelabel_version_traffic_percent", labels, v.traffic)
        if v.prelabel_accuracy is not None:
            yield Sample("labelloop_prelabel_version_accuracy", labels, v.prelabel_accuracy)
        yield Sample("labelloop_prelabel_version_state", {**labels, "state": v.state}, 1)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def observe(
    kind: str, event_type: str | None, body: Mapping[str, Any], registry: metrics.StatusGauges
) -> None:
    """Record one watch event of `kind`: forget a deleted object, else replace its samples."""
    meta = body.get("metadata") or {}
    key = ObjectKey(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    if event_type == "DELETED" or meta.get("deletionTimestamp"):
        registry.forget(key)
        return
    spec, status = body.get("spec") or {}, body.get("status") or {}
    registry.set(key, samples_of(kind, key.namespace, key.name, spec, status))


def _register(kind: str, plural: str) -> None:
    # kopf passes the watch event's type as `type`.
    def record(type: str | None, body: kopf.Body, **_: Any) -> None:
        observe(kind, type, body, metrics.STATUS)

    kopf.on.event(GROUP, VERSION, plural, id=f"metrics-{plural}")(record)


for _kind in KINDS:
    _register(_kind.kind, _kind.plural)
