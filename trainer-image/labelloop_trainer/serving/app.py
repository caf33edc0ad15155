"""Label Studio's ML backend protocol, as a function from request to response.

Kept apart from the HTTP plumbing (`server.py`) so the protocol — what is accepted, what each
refusal says — reads in one place. Label Studio stores whatever comes back, and drops every
prediction of a call whose result count does not match its tasks, so a request is checked
in full before any task reaches the model: a bad task fails its whole request with a 4xx
naming the field, instead of a partial answer Label Studio would silently discard.

`/health` and `/metrics` answer without credentials, since Kubernetes probes and Prometheus
scrapes carry none and neither reveals more than the model version (the metrics themselves
are in `telemetry.py`); `/setup`, `/predict`
and `/webhook` require basic auth when it is configured. Request bodies are never logged:
`/setup` carries the project owner's Label Studio `access_token`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from langchain_core.runnables import Runnable

from labelloop.api.labelconfig import LabelConfigError, LabelSchema, parse_label_config
from labelloop_trainer.serving.chain import Scorer, TaskError, TaskInput, build_chain, task_text
from labelloop_trainer.serving.request_batcher import DynamicBatcher
from labelloop_trainer.serving.telemetry import PrelabelMetrics

log = logging.getLogger(__name__)

PREDICT_FIELDS = frozenset({"tasks", "project", "label_config", "params", "model_version"})
SETUP_FIELDS = frozenset(
    {"project", "schema", "hostname", "access_token", "extra_params", "model_version"}
)
PATHS = ("/health", "/setup", "/predict", "/webhook", "/metrics")
PREDICT_TIMEOUT_S = 300.0
"""Longer than Label Studio waits (ML_TIMEOUT_PREDICT, 100 s): it gives up first."""


@dataclass(frozen=True)
class Response:
    """An HTTP answer: status, body and its content type, extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


class RequestError(Exception):
    """A request refused with a 4xx; the body names the offending field."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message


@dataclass(frozen=True)
class BasicAuth:
    """Expected basic-auth credentials, compared in constant time."""

    user: str
    password: str = field(repr=False)

    def allows(self, header: str | None) -> bool:
        """Whether an `Authorization` header carries these credentials."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, _, password = decoded.partition(b":")
        # Both comparisons always run, so the time taken does not tell which part was wrong.
        user_ok = hmac.compare_digest(user, self.user.encode())
        password_ok = hmac.compare_digest(password, self.password.encode())
        return user_ok & password_ok


@dataclass(frozen=True)
class Limits:
    """What one request may ask for, and how requests are grouped into forward passes."""

    max_tasks: int = 1000
    batch_size: int = 32
    batch_wait_s: float = 0.005


class PrelabelApp:
    """One model version behind Label Studio's ML backend protocol.

    `default_schema` is used by `/predict` calls that carry no `label_config` and come from a
    project that has not been through `/setup` (whose schema is remembered per project).
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        limits: Limits | None = None,
        auth: BasicAuth | None = None,
        default_schema: LabelSchema | None = None,
        chain: Runnable[TaskInput, dict[str, Any]] | None = None,
    ) -> None:
        self.scorer = scorer
        self.limits = limits or Limits()
        self.auth = auth
        self.metrics = PrelabelMetrics(scorer.model_version, scorer.task_type.value)
        self._default_schema = default_schema
        self._project_schemas: dict[str, LabelSchema] = {}
        self.chain = chain or build_chain(scorer)
        self._batcher: DynamicBatcher[TaskInput, dict[str, Any]] = DynamicBatcher(
            self.chain.batch,
            max_batch=self.limits.batch_size,
            max_wait_s=self.limits.batch_wait_s,
            on_batch=self.metrics.observe_batch,
        )

    def close(self) -> None:
        """Stop the batcher; requests still waiting fail."""
        self._batcher.close()

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one request; never raises."""
        began = time.perf_counter()
        route = path.split("?", 1)[0].rstrip("/") or "/"
        try:
            response = self._route(method, route, headers, body)
        except RequestError as err:
            log.info("%s %s refused (%d): %s", method, route, err.status, err)
            extra = {"WWW-Authenticate": 'Basic realm="labelloop"'} if err.status == 401 else {}
            response = _json(err.status, {"error": err.message, "field": err.field}, extra)
        except Exception:
            log.exception("%s %s failed", method, route)
            response = _json(500, {"error": "internal error; see the server log"})
        label = route if route in PATHS else "other"
        self.metrics.requests.labels(label, str(response.status)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - began)
        return response

    def _route(self, method: str, route: str, headers: Mapping[str, str], body: bytes) -> Response:
        allowed = {"/health": "GET", "/metrics": "GET"}.get(route, "POST")
        if route not in PATHS:
            raise RequestError(404, "path", f"no endpoint {route}; the endpoints: {PATHS}")
        if method != allowed and not (route == "/health" and method == "HEAD"):
            raise RequestError(405, "method", f"{route} takes {allowed}, not {method}")
        if route == "/health":
            return _json(200, self._health())
        if route == "/metrics":
            body, content_type = self.metrics.exposition()
            return Response(200, body, content_type)
        if self.auth is not None and not self.auth.allows(_header(headers, "Authorization")):
            raise RequestError(401, "Authorization", "basic auth credentials required")
        payload = _json_object(body)
        if route == "/setup":
            return _json(200, self._setup(payload))
        if route == "/webhook":
            action = payload.get("action")
            self.metrics.webhook_events.labels(action if isinstance(action, str) else "").inc()
            return _json(200, {"status": "ignored"})
        return _json(200, self._predict(payload))

    def _health(self) -> dict[str, Any]:
        return {
            "status": "UP",
            "model_version": self.scorer.model_version,
            "model_class": "labelloop-prelabel",
        }

    def _setup(self, payload: dict[str, Any]) -> dict[str, Any]:
        _check_fields(payload, SETUP_FIELDS)
        config = payload.get("schema")
        if config is not None:
            schema = self._schema(config, "schema")
            project = payload.get("project")
            if isinstance(project, str | int):
                self._project_schemas[str(project)] = schema
        return {"model_version": self.scorer.model_version}

    def _predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        _check_fields(payload, PREDICT_FIELDS)
        tasks = payload.get("tasks")
        if not isinstance(tasks, list):
            raise RequestError(400, "tasks", "required: a list of Label Studio tasks")
        if len(tasks) > self.limits.max_tasks:
            raise RequestError(
                413,
                "tasks",
                f"{len(tasks)} tasks in one request; at most {self.limits.max_tasks} (--max-batch)",
            )
        schema = self._request_schema(payload)
        for i, task in enumerate(tasks):
            try:
                task_text(task, schema, f"tasks[{i}]")
            except TaskError as err:
                raise RequestError(422, err.field, err.message) from None
        results = self._batcher.run([TaskInput(t, schema) for t in tasks], PREDICT_TIMEOUT_S)
        return {"results": results}

    def _request_schema(self, payload: dict[str, Any]) -> LabelSchema:
        config = payload.get("label_config")
        if config is not None:
            return self._schema(config, "label_config")
        known = self._project_schemas.get(str(payload.get("project")))
        if known is not None:
            return known
        if self._default_schema is not None:
            return self._default_schema
        raise RequestError(
            422, "label_config", "required: no /setup for this project and no --label-config"
        )

    def _schema(self, config: Any, name: str) -> LabelSchema:
        if not isinstance(config, str):
            raise RequestError(400, name, "must be the label config XML, as a string")
        try:
            schema = _parse(config)
            self.scorer.check(schema)
        except (LabelConfigError, ValueError) as err:
            raise RequestError(422, name, str(err)) from None
        return schema


@lru_cache(maxsize=64)
def _parse(config: str) -> LabelSchema:
    """Every predict call carries its project's config; parse each distinct one once."""
    return parse_label_config(config)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, "body", f"not valid JSON: {err}") from None
    if not isinstance(payload, dict):
        raise RequestError(400, "body", f"must be a JSON object, not {type(payload).__name__}")
    return payload


def _check_fields(payload: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise RequestError(
            400, unknown[0], f"unknown field(s) {unknown}; allowed: {sorted(allowed)}"
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=dict(headers or {}))
