"""The chart's Grafana dashboard asks only for what labelloop exports: every query names metrics
of the operator (`labelloop.metrics`) or of the prelabel servers (`serving.telemetry`), and
filters them only by labels those metrics carry."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelloop import metrics
from labelloop_trainer.serving.telemetry import PrelabelMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/labelloop/dashboards/labelloop.json"
# Labels Prometheus adds to every scraped series (ServiceMonitor, PodMonitor).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "endpoint", "service"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
SELECTOR = re.compile(r"\b(labelloop_[a-zA-Z0-9_]*)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def series_labels(collectors: list[Any]) -> dict[str, set[str]]:
    """Each sample name of `collectors` with the label names it carries."""
    found: dict[str, set[str]] = {}
    for collector in collectors:
        names = set(getattr(collector, "_labelnames", ()))
        for family in collector.describe():
            found[family.name] = names
            for suffix in SUFFIXES.get(family.type, ()):
                found[family.name + suffix] = names | ({"le"} if suffix == "_bucket" else set())
    return found


def operator_series() -> dict[str, set[str]]:
    found = series_labels(
        [
            metrics.RECONCILES,
            metrics.RECONCILE_SECONDS,
            metrics.DECISIONS,
            metrics.LABEL_STUDIO_REQUESTS,
            metrics.LABEL_STUDIO_REQUEST_ERRORS,
            metrics.LABEL_STUDIO_REQUEST_SECONDS,
        ],
    )
    found.update({name: set(labels) for name, (_, labels) in metrics.STATUS_GAUGES.items()})
    return found


def prelabel_series() -> dict[str, set[str]]:
    server = PrelabelMetrics("v1", "single-label")
    collectors = [
        server.requests,
        server.latency,
        server.predictions,
        server.batch_size,
        server.batch_seconds,
        server.webhook_events,
    ]
    found = series_labels(collectors)
    return {name: labels | TARGET_LABELS for name, labels in found.items()}


EXPORTED = {**operator_series(), **prelabel_series()}


def queries() -> Iterator[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"${variable['name']}", variable["query"]["query"]


QUERIES = list(queries())


def test_every_panel_asks_something() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels and all(p.get("targets") for p in panels)
    titles = {p["title"] for p in panels}
    for wanted in (
        "Annotation throughput",
        "Labels per round",
        "Model metric per version",
        "Prelabel acceptance per version",
        "Rollouts and rollbacks",
        "Training time",
        "GPU use",
    ):
        assert wanted in titles


@pytest.mark.parametrize(("where", "query"), QUERIES, ids=[f"{w}: {q[:40]}" for w, q in QUERIES])
def test_each_query_names_exported_metrics_by_their_labels(where: str, query: str) -> None:
    used = SELECTOR.findall(query)
    assert used, f"{where}: no labelloop metric in {query!r}"
    for name, matchers in used:
        assert name in EXPORTED, f"{where}: {name} is not exported"
        for label in MATCHER.findall(matchers):
            assert label in EXPORTED[name], f"{where}: {name} has no label {label!r}"


def test_the_check_itself_catches_an_unknown_metric_and_label() -> None:
    assert "labelloop_project_annotationz" not in EXPORTED
    assert "task_id" not in EXPORTED["labelloop_project_annotations"]
    assert MATCHER.findall('namespace=~"$namespace", project="x"') == ["namespace", "project"]
