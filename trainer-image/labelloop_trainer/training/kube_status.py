"""Live progress on the FineTuneJob's `status.progress`, written by rank 0 while it trains.

In a pod the ServiceAccount's token is mounted and `KUBERNETES_SERVICE_HOST` is set; outside
one, `KUBECONFIG` names the credentials to use; with neither there is no cluster to report
to. The trainer's ServiceAccount may only read FineTuneJobs and patch their status
(charts/labelloop/templates/trainer-rbac.yaml), and a JSON merge patch of
`{"status": {"progress": …}}` changes nothing else, so the operator's own status fields stay
as they are.

Reporting must never slow or fail training: the requests run in a background thread, which
sends the latest progress at most every `INTERVAL_S` seconds and at once at each epoch end,
and drops whatever came in between. A failure is logged once as a warning and training goes
on; a refusal that will not change (403, the job gone, another job under the same name:
its uid differs from the job file's) stops the reporting for the run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from labelloop_trainer.training.settings import JobRef

GROUP, VERSION, PLURAL = "labelloop.io", "v1alpha1", "finetunejobs"
INTERVAL_S = 10.0
REQUEST_TIMEOUT_S = 5.0
PERMANENT = {401, 403, 404}
"""Answers that a retry will not change."""

Warn = Callable[[str], None]


def connect() -> Any | None:
    """A Kubernetes API client: in-cluster credentials, else `$KUBECONFIG`, else None."""
    from kubernetes import client, config

    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient()
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig.split(os.pathsep)[0])
    return None


class StatusReporter:
    """Sends progress to one FineTuneJob's status from a background thread."""

    def __init__(
        self, job: JobRef, api_client: Any, warn: Warn, interval_s: float = INTERVAL_S
    ) -> None:
        from kubernetes import client

        self.job = job
        self._api = client.CustomObjectsApi(api_client)
        self._warn = warn
        self._interval_s = interval_s
        self._lock = threading.Condition()
        self._pending: dict[str, Any] | None = None
        self._urgent = False
        self._closed = False
        self._checked = False
        self._warned = False
        self._stopped = False
        self._last_sent = -interval_s
        self._thread = threading.Thread(target=self._run, name="status-reporter", daemon=True)
        self._thread.start()

    def update(
        self, *, epoch: float, step: int, total_steps: int, loss: float, now: bool = False
    ) -> None:
        """Record the latest progress; `now` sends it without waiting for the interval."""
        progress = {
            "epoch": epoch,
            "step": step,
            "totalSteps": total_steps,
            "loss": loss,
            "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        with self._lock:
            self._pending = progress
            self._urgent = self._urgent or now
            self._lock.notify()

    def flush(self) -> None:
        """Send the latest progress now (an epoch ended)."""
        with self._lock:
            self._urgent = self._pending is not None
            self._lock.notify()

    def close(self, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        """Send what is pending and stop; waits at most `timeout_s` for the thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._pending is not None and (
                        self._urgent or self._closed or self._wait_s() <= 0
                    ):
                        break
                    if self._closed:
                        return
                    self._lock.wait(None if self._pending is None else self._wait_s())
                body, self._pending, self._urgent = self._pending, None, False
            if not self._stopped:
                self._send(body)
            self._last_sent = time.monotonic()

    def _wait_s(self) -> float:
        return self._interval_s - (time.monotonic() - self._last_sent)

    def _send(self, progress: Mapping[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        job = self.job
        where = f"FineTuneJob {job.namespace}/{job.name}"
        try:
            if not self._checked:
                current = self._api.get_namespaced_custom_object(
                    GROUP, VERSION, job.namespace, PLURAL, job.name,
                    _request_timeout=REQUEST_TIMEOUT_S,
                )  # fmt: skip
                uid = (current.get("metadata") or {}).get("uid")
                if uid != job.uid:
                    self._stop(f"{where} has uid {uid}, not the job file's {job.uid}")
                    return
                self._checked = True
            self._api.patch_namespaced_custom_object_status(
                GROUP, VERSION, job.namespace, PLURAL, job.name,
                {"status": {"progress": dict(progress)}},
                _content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT_S,
            )  # fmt: skip
        except ApiException as err:
            message = f"cannot report progress on {where}: HTTP {err.status} {err.reason}"
            if err.status in PERMANENT:
                self._stop(message)
            else:
                self._warn_once(message)
        except Exception as err:  # unreachable API: no answer at all
            self._warn_once(f"cannot report progress on {where}: {type(err).__name__}: {err}")

    def _stop(self, message: str) -> None:
        self._stopped = True
        self._warn_once(f"{message}; live progress is off for this run")

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            self._warn(message + " (training goes on)")


def reporter(job: JobRef | None, warn: Warn) -> StatusReporter | None:
    """A reporter for `job` when there is a cluster to report to; never raises."""
    if job is None:
        return None
    try:
        api_client = connect()
    except Exception as err:  # bad or unreadable credentials: train without live status
        warn(f"no live progress: cannot load Kubernetes credentials: {err} (training goes on)")
        return None
    if api_client is None:
        return None
    return StatusReporter(job, api_client, warn)
