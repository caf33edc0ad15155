"""Label Studio's ML backend protocol: its requests and answers as pydantic models, and what
each endpoint does with them.

Kept apart from the HTTP plumbing (`server.py`) so the protocol — what is accepted, what each
refusal says — reads in one place. Label Studio stores whatever comes back, and drops every
prediction of a call whose result count does not match its tasks, so a request is checked
in full before any task reaches the model: a bad task fails its whole request with a 4xx
naming the field (`tasks[3].data.text`), instead of a partial answer Label Studio would
silently discard. Malformed JSON and wrong types are 400s (from the pydantic models);
well-formed requests the model cannot serve (a task without the config's text field, a
config of another task type) are 422s; too many tasks is a 413.

`/health`, `/versions` and `/metrics` answer without credentials, since Kubernetes probes
and Prometheus scrapes carry none and none reveals more than the model version; `/setup`,
`/predict` and `/webhook` require basic auth when it is configured. Request bodies are never
logged: `/setup` carries the project owner's Label Studio `access_token`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from langchain_core.runnables import Runnable
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labelloop.api.labelconfig import LabelConfigError, LabelSchema, parse_label_config
from labelloop_trainer.serving.chain import Scorer, TaskError, TaskInput, build_chain, task_text
from labelloop_trainer.serving.request_batcher import DynamicBatcher
from labelloop_trainer.serving.telemetry import PrelabelMetrics

log = logging.getLogger(__name__)

Model = TypeVar("Model", bound=BaseModel)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class RequestError(Exception):
    """A request refused with a 4xx; the body names the offending field."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status = status
        self.field = field
        self.message = message


class _Request(BaseModel):
    # A misspelt field is refused, not ignored: an ignored `label_config` would silently
    # predict with another project's schema.
    model_config = ConfigDict(extra="forbid")


class PredictRequest(_Request):
    """`POST /predict`: the tasks (each the whole Label Studio task) and their project."""

    tasks: list[dict[str, Any]]
    project: str | int | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None
    model_version: str | None = None


class SetupRequest(_Request):
    """`POST /setup`: Label Studio connecting a project (`schema` is its label config)."""

    project: str | int | None = None
    label_schema: str | None = Field(None, alias="schema")
    hostname: str | None = None
    access_token: str | None = Field(None, repr=False)
    extra_params: Any = None
    model_version: str | None = None


class WebhookEvent(BaseModel):
    """`POST /webhook`: any Label Studio event; only its action is read (for the metrics)."""

    model_config = ConfigDict(extra="allow")
    action: str | None = None


class PredictResponse(BaseModel):
    """One prediction per task, in the tasks' order."""

    results: list[dict[str, Any]]
    model_version: str


class WebhookResponse(BaseModel):
    status: str = "ignored"


class SetupResponse(BaseModel):
    model_version: str


class VersionsResponse(BaseModel):
    """`GET /versions`: one server serves one immutable version."""

    versions: list[str]


class HealthResponse(BaseModel):
    status: str = "UP"
    model_version: str
    model_class: str = "labelloop-prelabel"


class ErrorResponse(BaseModel):
    error: str
    field: str


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
    """What one request may ask for, and how tasks are grouped into forward passes.

    `max_tasks` is well above what Label Studio's "Retrieve predictions" sends for a page
    of selected tasks, which it sends as one request.
    """

    max_tasks: int = 10_000
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
            length=lambda item: len(task_text(item.task, item.schema)),
            on_batch=self.metrics.observe_batch,
        )

    async def close(self) -> None:
        """Stop the batcher; requests still waiting fail."""
        await self._batcher.close()

    def check_auth(self, authorization: str | None) -> None:
        if self.auth is not None and not self.auth.allows(authorization):
            raise RequestError(401, "Authorization", "basic auth credentials required")

    def health(self) -> HealthResponse:
        return HealthResponse(model_version=self.scorer.model_version)

    def versions(self) -> VersionsResponse:
        return VersionsResponse(versions=[self.scorer.model_version])

    def setup(self, body: bytes) -> SetupResponse:
        request = parse(SetupRequest, body)
        if request.label_schema is not None:
            schema = self._schema(request.label_schema, "schema")
            if request.project is not None:
                self._project_schemas[str(request.project)] = schema
        return SetupResponse(model_version=self.scorer.model_version)

    def webhook(self, body: bytes) -> WebhookResponse:
        event = parse(WebhookEvent, body)
        self.metrics.webhook_events.labels(event.action or "").inc()
        return WebhookResponse()

    async def predict(self, body: bytes) -> PredictResponse:
        request = parse(PredictRequest, body)
        tasks = request.tasks
        if len(tasks) > self.limits.max_tasks:
            raise RequestError(
                413,
                "tasks",
                f"{len(tasks)} tasks in one request; at most {self.limits.max_tasks} (--max-batch)",
            )
        schema = self._request_schema(request)
        lengths = []
        for i, task in enumerate(tasks):
            try:
                lengths.append(len(task_text(task, schema, f"tasks[{i}]")))
            except TaskError as err:
                raise RequestError(422, err.field, err.message) from None
        # The tasks of one request go to the model shortest first, so each forward pass pads
        # its texts to a similar length (a few thousand tasks of "Retrieve predictions" would
        # otherwise pad most texts to the longest of each random group); answers keep the
        # request's order.
        order = sorted(range(len(tasks)), key=lengths.__getitem__)
        answers = await self._batcher.run([TaskInput(tasks[i], schema) for i in order])
        results: list[dict[str, Any]] = [{}] * len(tasks)
        for i, answer in zip(order, answers, strict=True):
            results[i] = answer
        return PredictResponse(results=results, model_version=self.scorer.model_version)

    def _request_schema(self, request: PredictRequest) -> LabelSchema:
        if request.label_config is not None:
            return self._schema(request.label_config, "label_config")
        known = self._project_schemas.get(str(request.project))
        if known is not None:
            return known
        if self._default_schema is not None:
            return self._default_schema
        raise RequestError(
            422, "label_config", "required: no /setup for this project and no --label-config"
        )

    def _schema(self, config: str, name: str) -> LabelSchema:
        try:
            schema = _parse_config(config)
            self.scorer.check(schema)
        except (LabelConfigError, ValueError) as err:
            raise RequestError(422, name, str(err)) from None
        return schema


def parse(model: type[Model], body: bytes) -> Model:
    """The request body as `model`, or a 400 naming the first offending field."""
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        kind, location = first["type"], first["loc"]
        if kind == "json_invalid":
            raise RequestError(400, "body", f"not valid JSON: {first['msg']}") from None
        if not location:
            raise RequestError(400, "body", "must be a JSON object") from None
        where = field_path(location)
        if kind == "extra_forbidden":
            allowed = sorted(f.alias or name for name, f in model.model_fields.items())
            message = f"unknown field; allowed: {allowed}"
        else:
            message = first["msg"]
        raise RequestError(400, where, message) from None


def field_path(location: tuple[int | str, ...]) -> str:
    """`("tasks", 0, "data")` → `tasks[0].data`; a key that is not a plain name is quoted,
    so an empty or odd key is still named: `("tasks", 0, "")` → `tasks[0][""]`."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path


@lru_cache(maxsize=64)
def _parse_config(config: str) -> LabelSchema:
    """Every predict call carries its project's config; parse each distinct one once."""
    return parse_label_config(config)
