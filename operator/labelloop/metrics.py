"""The operator's Prometheus metrics: every metric labelloop's operator exports is defined here.

One module, at the bottom of the layers, so that any room (a controller, a step against
Label Studio, the Label Studio client) can record a figure without importing another room,
and so that a newcomer adding a metric has one obvious place to put it. Labels stay bounded:
kinds, outcomes and reasons, never task ids or user names.

The operator serves them at `--metrics-listen` (`labelloop operator --help`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["RECONCILES", "RECONCILE_SECONDS", "registry", "serve", "timed_reconcile"]

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


def serve(listen: str) -> None:
    """Serve `/metrics` on `host:port` from a daemon thread."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host or "0.0.0.0", registry=registry)
