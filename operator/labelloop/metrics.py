"""The operator's Prometheus metrics: every metric labelloop's operator exports is defined here.

One module, at the bottom of the layers, so that any room (a controller, a step against
Label Studio, the Label Studio client) can record a figure without importing another room,
and so that a newcomer adding a metric has one obvious place to put it. Labels stay bounded:
namespaces, projects, model versions, kinds, outcomes and reasons, never task ids or user names.

Four sorts:
- the loop's figures (`STATUS_GAUGES`), read off each object's status as the operator wrote
  it: `StatusGauges` holds the latest samples of every object and forgets an object when it
  is deleted, so a version dropped from status, or a deleted project, leaves no stale series
  (the controllers turn typed statuses into samples, `controllers.status_metrics`);
- counters of what happened in this process: reconciles, audited decisions
  (`controllers.audit`), requests to Label Studio;
- durations: reconciles and Label Studio requests;
- whether this process is the one replica that acts (`LEADER`, `labelloop.leader`).

The operator serves them at `--metrics-listen` (`labelloop operator --help`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "DECISIONS",
    "LABEL_STUDIO_REQUESTS",
    "LABEL_STUDIO_REQUEST_ERRORS",
    "LABEL_STUDIO_REQUEST_SECONDS",
    "LEADER",
    "RECONCILES",
    "RECONCILE_SECONDS",
    "STATUS",
    "STATUS_GAUGES",
    "ObjectKey",
    "Sample",
    "StatusGauges",
    "endpoint_of",
    "exported_names",
    "registry",
    "serve",
    "timed_reconcile",
]

registry: CollectorRegistry = REGISTRY

RECONCILES = Counter(
    "labelloop_reconciles",
    "Reconciles by kind and outcome: ready, reconciling, stalled, or error (an exception kopf "
    "retries).",
    ["kind", "outcome"],
    registry=registry,
)
RECONCILE_SECONDS = Histogram(
    "labelloop_reconcile_duration_seconds",
    "Wall time of one reconcile, by kind.",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)
DECISIONS = Counter(
    "labelloop_decisions",
    "Decisions that change the loop, each also an Event and a log line (controllers.audit): "
    "`decision` is the Event's reason (TrainingRoundStarted, PromotionGatePassed, "
    "PromotionGateRefused, RolloutStarted, CanaryStep, Promoted, RollbackStarted, "
    "RolloutAbandoned, RolledBack, QualityRulesViolated, AnnotatorTiersChanged), `outcome` a "
    "bounded qualifier (a rollback's cause: NotReady or LowPrelabelAccuracy), else empty.",
    ["kind", "namespace", "project", "decision", "outcome"],
    registry=registry,
)
LABEL_STUDIO_REQUESTS = Counter(
    "labelloop_label_studio_requests",
    "HTTP requests to Label Studio (each retry counted), by method, endpoint (the path with "
    "ids as {id}) and status code (`error` when no answer came).",
    ["method", "endpoint", "code"],
    registry=registry,
)
LABEL_STUDIO_REQUEST_ERRORS = Counter(
    "labelloop_label_studio_request_errors",
    "Requests to Label Studio that failed: `reason` is the HTTP status of a 4xx/5xx answer, or "
    "the transport error's name (ConnectError, ReadTimeout, ...).",
    ["method", "endpoint", "reason"],
    registry=registry,
)
LABEL_STUDIO_REQUEST_SECONDS = Histogram(
    "labelloop_label_studio_request_duration_seconds",
    "Time from sending a request to Label Studio to its answer's headers (or its failure).",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)

# The loop's figures, read off the objects' status: name -> (help, label names).
PROJECT = ("namespace", "project")
VERSION = ("namespace", "project", "version")
SERVICE_VERSION = ("namespace", "project", "service", "version")
STATUS_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "labelloop_project_tasks": ("Tasks in the Label Studio project.", PROJECT),
    "labelloop_project_annotated_tasks": ("Tasks with at least one annotation.", PROJECT),
    "labelloop_project_annotations": ("Annotations counted in the project.", PROJECT),
    "labelloop_project_annotations_since_last_round": (
        "Annotations since the last training round started.",
        PROJECT,
    ),
    "labelloop_project_rounds": ("Training rounds started.", PROJECT),
    "labelloop_project_quality_violations": (
        "Quality rules (spec.quality.rules) the label distribution breaks now.",
        PROJECT,
    ),
    "labelloop_project_disagreements": (
        "Annotations that contradict a confident prelabel.",
        PROJECT,
    ),
    "labelloop_project_annotators": (
        "Annotators per tier (expert, standard, basic, unrated).",
        (*PROJECT, "tier"),
    ),
    "labelloop_prelabels_reviewed": (
        "Prelabels of a version that annotators have answered (kept or changed).",
        VERSION,
    ),
    "labelloop_prelabels_accepted": (
        "Prelabels of a version that annotators kept unchanged.",
        VERSION,
    ),
    "labelloop_finetunejobs": (
        "FineTuneJobs by phase (Pending, Running, Succeeded, Failed); the rounds a project "
        "finished are its Succeeded and Failed ones.",
        (*PROJECT, "phase"),
    ),
    "labelloop_training_epoch": ("Current epoch of a running FineTuneJob.", VERSION),
    "labelloop_training_loss": ("Latest training loss of a running FineTuneJob.", VERSION),
    "labelloop_model_training_seconds": (
        "Time a finished FineTuneJob's Job ran, start to completion.",
        VERSION,
    ),
    "labelloop_model_training_examples": ("Examples a version was trained on.", VERSION),
    "labelloop_training_gpus": (
        "GPUs a running FineTuneJob holds (nodes times GPUs per node).",
        VERSION,
    ),
    "labelloop_model_gpu_seconds": (
        "GPU time a finished FineTuneJob took: its training seconds times its GPUs.",
        VERSION,
    ),
    "labelloop_model_metric": (
        "Final evaluation metric of a version on the held-out split, by metric name.",
        (*VERSION, "metric"),
    ),
    "labelloop_model_gate_passed": (
        "1 when a version passed its promotion gate, 0 when the gate refused it.",
        VERSION,
    ),
    "labelloop_prelabel_version_replicas": (
        "Desired replicas of a served version.",
        SERVICE_VERSION,
    ),
    "labelloop_prelabel_version_ready_replicas": (
        "Ready replicas of a served version.",
        SERVICE_VERSION,
    ),
    "labelloop_prelabel_version_traffic_percent": (
        "Share of prelabel traffic a version takes, in percent.",
        SERVICE_VERSION,
    ),
    "labelloop_prelabel_version_accuracy": (
        "Share of a version's prelabels annotators kept, as the rollout saw it.",
        SERVICE_VERSION,
    ),
    "labelloop_prelabel_version_state": (
        "1 for the role a version has (Progressing, Active, Previous, Retired, RolledBack).",
        (*SERVICE_VERSION, "state"),
    ),
}


@dataclass(frozen=True)
class ObjectKey:
    """The custom resource some samples were read from."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Sample:
    """One value of one of `STATUS_GAUGES`."""

    metric: str
    labels: Mapping[str, str]
    value: float


class StatusGauges(Collector):
    """The latest samples of every object, summed per series when collected (so that each
    FineTuneJob adds one to its phase's count)."""

    def __init__(self, gauges: Mapping[str, tuple[str, tuple[str, ...]]]) -> None:
        self._gauges = dict(gauges)
        self._samples: dict[ObjectKey, tuple[Sample, ...]] = {}
        self._lock = threading.Lock()

    def set(self, key: ObjectKey, samples: Iterable[Sample]) -> None:
        """Replace everything known of `key` with `samples`."""
        checked = tuple(samples)
        for sample in checked:
            if sample.metric not in self._gauges:
                raise ValueError(f"{sample.metric} is not one of metrics.STATUS_GAUGES")
            names = self._gauges[sample.metric][1]
            if tuple(sample.labels) != names:
                raise ValueError(
                    f"{sample.metric} takes the labels {names}, not {tuple(sample.labels)}"
                )
        with self._lock:
            self._samples[key] = checked

    def forget(self, key: ObjectKey) -> None:
        with self._lock:
            self._samples.pop(key, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            everything = [s for samples in self._samples.values() for s in samples]
        totals: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in self._gauges}
        for sample in everything:
            series = totals[sample.metric]
            values = tuple(sample.labels.values())
            series[values] = series.get(values, 0.0) + sample.value
        for name, (documentation, labels) in self._gauges.items():
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            for values, value in sorted(totals[name].items()):
                family.add_metric(list(values), value)
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, (documentation, labels) in self._gauges.items():
            yield GaugeMetricFamily(name, documentation, labels=list(labels))


STATUS = StatusGauges(STATUS_GAUGES)
registry.register(STATUS)

LEADER = Gauge(
    "labelloop_leader",
    "1 while this replica acts (it holds the operator's Lease, or runs without leader "
    "election), 0 while it waits as a standby: summed over the replicas, 1.",
    registry=registry,
)


@contextmanager
def timed_reconcile(kind: str) -> Iterator[list[str]]:
    """Time a reconcile of `kind` and count it under the outcome the body appends (`error`
    when it raises, `unreported` when it ends without one)."""
    outcome: list[str] = []
    start = time.monotonic()
    try:
        yield outcome
    except BaseException:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, outcome[-1] if outcome else "unreported").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - start)


_ID = re.compile(r"/\d+(?=/|$)")


def endpoint_of(path: str) -> str:
    """A request path with its ids replaced, so that the endpoint label stays bounded:
    `/api/projects/12/` -> `/api/projects/{id}/` (a query string is dropped)."""
    return _ID.sub("/{id}", path.split("?", 1)[0])


def exported_names() -> set[str]:
    """Every sample name the operator exports (a counter's `_total`, a histogram's
    `_bucket`, `_sum` and `_count`, ...), for checking the dashboard's queries."""
    names = set()
    for family in registry.collect():
        if family.name.startswith("labelloop_"):
            names.add(family.name)
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_sum", "_count", "_created"),
            }.get(family.type, ())
            names.update(family.name + suffix for suffix in suffixes)
    return names


def serve(listen: str) -> None:
    """Serve `/metrics` on `host:port` from a daemon thread."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
