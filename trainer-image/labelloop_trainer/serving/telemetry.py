"""The prelabel server's telemetry: its Prometheus metrics, served on `GET /metrics`.

Requests by path and status, latency, tasks predicted, the size and time of each batch
through the chain, webhook events, and the model version served. Each server has a registry
of its own, so several servers in one process (the tests) never share counters.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class PrelabelMetrics:
    """The server's Prometheus metrics, in a registry of its own (one per server)."""

    def __init__(self, model_version: str, task_type: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "labelloop_prelabel_requests",
            "HTTP requests by path and status code",
            ["path", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "labelloop_prelabel_request_seconds",
            "Time to answer a request, by path",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.predictions = Counter(
            "labelloop_prelabel_predictions", "Tasks predicted", registry=self.registry
        )
        self.batch_size = Histogram(
            "labelloop_prelabel_batch_size",
            "Tasks per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "labelloop_prelabel_batch_seconds",
            "Time of one batch through the chain (formatting, forward pass, parsing)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "labelloop_prelabel_webhook_events",
            "Webhook events received (and ignored), by action",
            ["action"],
            registry=self.registry,
        )
        info = Gauge(
            "labelloop_prelabel_model_info",
            "The model version served",
            ["model_version", "task_type"],
            registry=self.registry,
        )
        info.labels(model_version, task_type).set(1)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.predictions.inc(size)

    def exposition(self) -> tuple[bytes, str]:
        """The body of `GET /metrics` and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
