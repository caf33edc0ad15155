"""`LabelStudioClient`: every call labelloop makes to Label Studio, with one error policy.

Calls go through label-studio-sdk where it does the job; plain httpx (sharing the SDK's
connection pool) serves the two endpoints the SDK lacks, `/health` and the project-less label
config validation. The SDK's own retries are switched off (`max_retries=0`) because it re-sends
any request, a POST included, on a 5xx; here only idempotent requests are retried on an answer
or a timeout, and any request when the connection itself failed (nothing reached the server).
Waits grow exponentially. A client may share `slots` (a semaphore) with the other clients of
its server, which bounds how many requests they have in flight together.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar, cast

import httpx
import pydantic

# The SDK's generated base client, not its `LabelStudio`: that subclass adds export helpers
# built on pandas (about 50 MiB more in every operator process) that labelloop does not use.
from label_studio_sdk.base_client import LabelStudioBase
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.types.prediction_request import PredictionRequest

from labelloop import metrics
from labelloop.labelstudio.errors import (
    LabelConfigRejected,
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioNotFound,
    LabelStudioRequestError,
    LabelStudioUnreachable,
)
from labelloop.labelstudio.models import (
    JSON,
    Annotation,
    MLBackend,
    Prediction,
    Project,
    ProjectCounts,
    Task,
    View,
    Webhook,
)

__all__ = ["LabelStudioClient"]

T = TypeVar("T")

# The SDK drops keyword arguments left at its OMIT marker, the Ellipsis; None would be sent as
# JSON null and clear the field.
_OMIT: Any = ...
# Answers worth asking again for; 502/503/504 also mean "not reachable" once retries run out.
_TRANSIENT = {408, 429, 500, 502, 503, 504}
_GATEWAY = {502, 503, 504}
# Keys of Label Studio's error envelope, as opposed to per-field messages.
_ENVELOPE = {"id", "status_code", "version", "detail", "exc_info", "validation_errors"}


class LabelStudioClient:
    """A synchronous client of one Label Studio server, authenticated by an API token.

    `timeout` bounds every request (export has its own, longer one); `retries` and `backoff`
    (the first wait, doubled each time) shape the retries described in the module docstring;
    `slots` bounds the requests in flight (see there). Safe to share between threads.
    """

    # Ids per request when listing many projects' counts (Label Studio's largest page).
    COUNTS_PAGE = 100

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 10.0,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        slots: threading.BoundedSemaphore | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._slots = slots
        self._token = token
        self._retries = retries
        self._backoff = backoff
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=MeasuredTransport(httpx.HTTPTransport())
        )
        try:
            self._sdk = LabelStudioBase(
                base_url=self.url,
                api_key=token,
                timeout=timeout,
                max_retries=0,
                httpx_client=self._http,
            )
        except ApiError as exc:  # the SDK refuses an expired personal access token up front
            raise self._error("authenticate", exc) from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- server -----------------------------------------------------------------------------

    def health(self) -> None:
        """Return when Label Studio is up and accepts the token; raise otherwise."""
        self._call("health check", lambda: self._raw("GET", "/health"), idempotent=True)
        self._call("token check", self._sdk.users.whoami, idempotent=True)

    # -- projects ---------------------------------------------------------------------------

    def get_project(self, project_id: int) -> Project:
        raw = self._call(
            f"get project {project_id}",
            lambda: self._sdk.projects.get(id=project_id),
            idempotent=True,
        )
        return Project.from_json(_dump(raw))

    def project_counts(self, project_ids: Sequence[int]) -> dict[int, ProjectCounts]:
        """The counters of many projects, `COUNTS_PAGE` to a request; a project that no
        longer exists is left out."""
        found: dict[int, ProjectCounts] = {}
        ids = sorted(set(project_ids))
        for start in range(0, len(ids), self.COUNTS_PAGE):
            chunk = ",".join(str(i) for i in ids[start : start + self.COUNTS_PAGE])
            raw = self._call(
                f"list counts of {len(ids[start : start + self.COUNTS_PAGE])} projects",
                partial(self._sdk.projects.list_counts, ids=chunk, page_size=self.COUNTS_PAGE),
                idempotent=True,
            )
            for item in raw.results or []:
                counts = ProjectCounts.from_json(_dump(item))
                found[counts.id] = counts
        return found

    def create_project(self, title: str, description: str, label_config: str) -> int:
        """Create a project, return its id. Label Studio wants a title of 3 characters or more."""
        raw = self._call(
            f"create project {title!r}",
            lambda: self._sdk.projects.create(
                title=title, description=description, label_config=label_config
            ),
            idempotent=False,
            sends_config=True,
        )
        return int(_dump(raw)["id"])

    def update_project(
        self,
        project_id: int,
        *,
        title: str | None = None,
        description: str | None = None,
        label_config: str | None = None,
    ) -> Project:
        """Change the fields given, leave the others alone."""
        raw = self._call(
            f"update project {project_id}",
            lambda: self._sdk.projects.update(
                id=project_id,
                title=_OMIT if title is None else title,
                description=_OMIT if description is None else description,
                label_config=_OMIT if label_config is None else label_config,
            ),
            idempotent=True,
            sends_config=label_config is not None,
        )
        return Project.from_json(_dump(raw))

    def validate_label_config(self, label_config: str, project_id: int | None = None) -> None:
        """Raise LabelConfigRejected unless Label Studio accepts `label_config`.

        With `project_id`, Label Studio checks it as the new config of that project.
        """
        if project_id is None:
            # The SDK has no call for Label Studio's project-less validation endpoint.
            self._call(
                "validate label config",
                lambda: self._raw(
                    "POST", "/api/projects/validate/", {"label_config": label_config}, auth=True
                ),
                idempotent=True,
                sends_config=True,
            )
            return
        self._call(
            f"validate label config for project {project_id}",
            lambda: self._sdk.projects.validate_label_config(
                id=project_id, label_config=label_config
            ),
            idempotent=True,
            sends_config=True,
        )

    # -- tasks, annotations, predictions ----------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Sequence[JSON]) -> int:
        """Import tasks (each a dict with a `data` dict, or the data itself); return the count.

        Not retried once sent: a second import would duplicate the tasks.
        """
        raw = self._call(
            f"import {len(tasks)} tasks into project {project_id}",
            # The SDK types tasks as its own model; Label Studio takes any JSON object.
            lambda: self._sdk.projects.import_tasks(id=project_id, request=list[Any](tasks)),
            idempotent=False,
        )
        return int(_dump(raw).get("task_count") or 0)

    def iter_tasks(self, project_id: int, page_size: int = 100) -> Iterator[Task]:
        """Every task of the project, with its annotations and predictions, page by page.

        Each page is its own retried request. The SDK's pager is not iterated: it ends silently
        on any 404, so a deleted project would look like an empty one.
        """
        page = 1
        while True:
            try:
                pager = self._call(
                    f"list tasks of project {project_id}, page {page}",
                    partial(
                        self._sdk.tasks.list,
                        project=project_id,
                        page=page,
                        page_size=page_size,
                        fields="all",
                    ),
                    idempotent=True,
                )
            except LabelStudioNotFound:
                if page == 1:
                    raise
                return  # tasks were deleted while paging: the last page went away
            for item in pager.items or []:
                yield Task.from_json(_dump(item))
            total = int(getattr(pager.response, "total", 0) or 0)
            if not pager.items or page * page_size >= total:
                return
            page += 1

    def create_annotation(
        self, task_id: int, result: Sequence[JSON], completed_by: int | None = None
    ) -> Annotation:
        """Annotate a task; `completed_by` is a user id, by default the token's user."""
        raw = self._call(
            f"annotate task {task_id}",
            lambda: self._sdk.annotations.create(
                id=task_id,
                result=list(result),
                completed_by=_OMIT if completed_by is None else completed_by,
            ),
            idempotent=False,
        )
        return Annotation.from_json(_dump(raw), task_id)

    def create_prediction(
        self, task_id: int, result: Sequence[JSON], score: float, model_version: str
    ) -> Prediction:
        raw = self._call(
            f"predict task {task_id}",
            lambda: self._sdk.predictions.create(
                task=task_id, result=list(result), score=score, model_version=model_version
            ),
            idempotent=False,
        )
        return Prediction.from_json(_dump(raw), task_id)

    def import_predictions(self, project_id: int, predictions: Sequence[JSON]) -> int:
        """Store many predictions in one request; each is `{task, result, score,
        model_version}` (other keys are left out). Returns how many Label Studio created.

        Not retried once sent: a second attempt after a lost answer would store duplicates.
        """
        request = [
            PredictionRequest(
                task=p["task"],
                result=p["result"],
                score=p.get("score"),
                model_version=p.get("model_version"),
            )
            for p in predictions
        ]
        answer = self._call(
            f"import {len(request)} predictions into project {project_id}",
            lambda: self._sdk.projects.import_predictions(id=project_id, request=request),
            idempotent=False,
        )
        return answer.created if answer.created is not None else len(request)

    def request_predictions(
        self, project_id: int, task_ids: Sequence[int] | None = None, timeout: float = 300.0
    ) -> None:
        """Have the project's ML backend predict `task_ids` (all tasks when None).

        Label Studio calls the backend's /predict inside this request, hence the own, longer
        `timeout`, and stores the answers; tasks that already hold a prediction of the
        backend's current model version are left out. Not retried once sent: the backend may
        still be working on the first request.
        """
        selected = (
            {"all": True, "excluded": []}
            if task_ids is None
            else {"all": False, "included": list(task_ids)}
        )
        self._call(
            f"request predictions in project {project_id}",
            lambda: self._sdk.actions.create(
                id="retrieve_tasks_predictions",
                project=project_id,
                # The SDK types the selection as its own models; Label Studio takes this JSON.
                selected_items=cast(Any, selected),
                request_options={"timeout_in_seconds": int(timeout)},
            ),
            idempotent=False,
        )

    def export_annotations(self, project_id: int, timeout: float = 300.0) -> list[JSON]:
        """The project's annotated tasks in Label Studio's JSON export format.

        The export is built inside the request, so it gets its own, longer `timeout`.
        """

        def download() -> list[JSON]:
            chunks = self._sdk.projects.exports.download_sync(
                id=project_id,
                export_type="JSON",
                request_options={"timeout_in_seconds": int(timeout)},
            )
            exported: list[JSON] = json.loads(b"".join(chunks))
            return exported

        return self._call(f"export project {project_id}", download, idempotent=True)

    # -- webhooks ---------------------------------------------------------------------------

    def list_webhooks(self, project_id: int) -> list[Webhook]:
        raw = self._call(
            f"list webhooks of project {project_id}",
            lambda: self._sdk.webhooks.list(project=str(project_id)),
            idempotent=True,
        )
        return [Webhook.from_json(_dump(w)) for w in raw]

    def create_webhook(
        self,
        project_id: int,
        url: str,
        actions: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        send_payload: bool = True,
    ) -> Webhook:
        """Subscribe `url` to `actions` (e.g. ANNOTATION_CREATED), or to all when none are given.

        `headers` (at most 10) travel with each call, e.g. a shared secret. Label Studio sends
        each event once, with a 1 s timeout and no retry.
        """
        raw = self._call(
            f"create webhook of project {project_id}",
            lambda: self._sdk.webhooks.create(
                project=project_id,
                url=url,
                actions=list(actions),
                send_for_all_actions=not actions,
                headers=dict(headers or {}),
                send_payload=send_payload,
            ),
            idempotent=False,
        )
        return Webhook.from_json(_dump(raw))

    def update_webhook(
        self,
        webhook_id: int,
        *,
        url: str | None = None,
        actions: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
        is_active: bool | None = None,
    ) -> Webhook:
        """Change the fields given; `actions=()` subscribes to all actions."""
        raw = self._call(
            f"update webhook {webhook_id}",
            lambda: self._sdk.webhooks.update(
                id=webhook_id,
                url=_OMIT if url is None else url,
                actions=_OMIT if actions is None else list(actions),
                send_for_all_actions=_OMIT if actions is None else not actions,
                headers=_OMIT if headers is None else dict(headers),
                is_active=_OMIT if is_active is None else is_active,
            ),
            idempotent=True,
        )
        return Webhook.from_json(_dump(raw))

    def delete_webhook(self, webhook_id: int) -> None:
        self._call(
            f"delete webhook {webhook_id}",
            lambda: self._sdk.webhooks.delete(id=webhook_id),
            idempotent=True,
        )

    # -- ML backends ------------------------------------------------------------------------

    def list_ml_backends(self, project_id: int) -> list[MLBackend]:
        raw = self._call(
            f"list ML backends of project {project_id}",
            lambda: self._sdk.ml.list(project=project_id),
            idempotent=True,
        )
        return [MLBackend.from_json(_dump(m)) for m in raw]

    def get_ml_backend(self, backend_id: int) -> MLBackend:
        raw = self._call(
            f"get ML backend {backend_id}",
            lambda: self._sdk.ml.get(id=backend_id),
            idempotent=True,
        )
        return MLBackend.from_json(_dump(raw))

    def create_ml_backend(
        self,
        project_id: int,
        url: str,
        title: str,
        *,
        is_interactive: bool = False,
        timeout: float | None = None,
    ) -> MLBackend:
        """Connect an ML backend. Label Studio calls its /health and /setup before saying yes,
        and subscribes `url`/webhook to all the project's events.

        `timeout` is how long Label Studio waits for a /predict answer (its default: 100 s).
        """
        raw = self._call(
            f"connect ML backend {url} to project {project_id}",
            lambda: self._sdk.ml.create(
                project=project_id,
                url=url,
                title=title,
                is_interactive=is_interactive,
                auth_method="NONE",
                timeout=_OMIT if timeout is None else timeout,
            ),
            idempotent=False,
        )
        return MLBackend.from_json(_dump(raw))

    def update_ml_backend(
        self,
        backend_id: int,
        project_id: int,
        *,
        url: str | None = None,
        title: str | None = None,
        is_interactive: bool | None = None,
        timeout: float | None = None,
    ) -> MLBackend:
        """Change the fields given; Label Studio checks the backend again, as on creation."""
        if url is None:
            # Label Studio 1.23 fails (HTTP 500) re-checking a backend when the url is left out.
            url = self.get_ml_backend(backend_id).url
        raw = self._call(
            f"update ML backend {backend_id}",
            lambda: self._sdk.ml.update(
                id=backend_id,
                project=project_id,
                url=url,
                title=_OMIT if title is None else title,
                is_interactive=_OMIT if is_interactive is None else is_interactive,
                timeout=_OMIT if timeout is None else timeout,
            ),
            idempotent=True,
        )
        return MLBackend.from_json(_dump(raw))

    def delete_ml_backend(self, backend_id: int) -> None:
        """Disconnect an ML backend, and the webhook Label Studio made for it on creation.

        Label Studio leaves that webhook behind; it stays while another backend of the project
        still has the same URL.
        """
        backend = self.get_ml_backend(backend_id)
        self._call(
            f"delete ML backend {backend_id}",
            lambda: self._sdk.ml.delete(id=backend_id),
            idempotent=True,
        )
        remaining = {m.url for m in self.list_ml_backends(backend.project_id)}
        if backend.url in remaining:
            return
        hook_url = backend.url.rstrip("/") + "/webhook"
        for webhook in self.list_webhooks(backend.project_id):
            if webhook.url == hook_url:
                self.delete_webhook(webhook.id)

    # -- Data Manager views -----------------------------------------------------------------

    def list_views(self, project_id: int) -> list[View]:
        raw = self._call(
            f"list views of project {project_id}",
            lambda: self._sdk.views.list(project=project_id),
            idempotent=True,
        )
        return [View.from_json(_dump(v)) for v in raw]

    def create_view(self, project_id: int, title: str, filters: JSON) -> View:
        """Add a Data Manager tab, e.g. filters = {"conjunction": "and", "items": [{"filter":
        "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0}]}.
        """
        raw = self._call(
            f"create view {title!r} of project {project_id}",
            lambda: self._sdk.views.create(
                project=project_id, data={"title": title, "filters": filters}
            ),
            idempotent=False,
        )
        return View.from_json(_dump(raw))

    def update_view(self, view_id: int, project_id: int, title: str, filters: JSON) -> View:
        """Replace a tab's title and filters (Label Studio stores them as one document)."""
        raw = self._call(
            f"update view {view_id}",
            lambda: self._sdk.views.update(
                id=view_id, project=project_id, data={"title": title, "filters": filters}
            ),
            idempotent=True,
        )
        return View.from_json(_dump(raw))

    # -- plumbing ---------------------------------------------------------------------------

    def _raw(
        self, method: str, path: str, body: JSON | None = None, *, auth: bool = False
    ) -> httpx.Response:
        """A request the SDK cannot make; failures come back as the SDK's ApiError."""
        # The SDK works out the Authorization header (a legacy token or a refreshed JWT).
        headers = self._sdk._client_wrapper.get_headers() if auth else {}
        response = self._http.request(method, path, json=body, headers=headers)
        if response.status_code >= 400:
            try:
                detail: object = response.json()
            except ValueError:
                detail = response.text
            raise ApiError(status_code=response.status_code, body=detail)
        return response

    def _call(
        self,
        what: str,
        send: Callable[[], T],
        *,
        idempotent: bool,
        sends_config: bool = False,
    ) -> T:
        """`send()`, retried as the module docstring says, its failures as LabelStudioErrors."""
        attempt = 0
        while True:
            try:
                if self._slots is None:
                    return send()
                with self._slots:
                    return send()
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure: Exception = exc
                retry = True  # nothing was sent: safe for any request
            except httpx.TransportError as exc:
                failure = exc
                retry = idempotent  # a POST may have been applied before the answer was lost
            except ApiError as exc:
                failure = exc
                retry = idempotent and exc.status_code in _TRANSIENT
            if not retry or attempt >= self._retries:
                raise self._error(what, failure, sends_config) from None
            time.sleep(self._backoff * 2**attempt)
            attempt += 1

    def _error(self, what: str, exc: Exception, sends_config: bool = False) -> LabelStudioError:
        """The LabelStudioError for `exc`. Raised `from None` by callers: the SDK's and httpx's
        exceptions keep the request, Authorization header included."""
        where = f"{what} at {self.url}"
        if not isinstance(exc, ApiError):
            return LabelStudioUnreachable(
                self._redact(f"{where}: no answer ({type(exc).__name__}: {exc})")
            )
        status = exc.status_code
        said = self._redact(_describe(exc.body)) or f"HTTP {status}"
        message = f"{where}: {said}"
        if status in (401, 403):
            return LabelStudioAuthError(f"{where}: the token was refused: {said}", status)
        if status == 404:
            return LabelStudioNotFound(message, status)
        if status == 400 and sends_config and _about_label_config(exc.body):
            return LabelConfigRejected(
                f"{where}: Label Studio rejected the label config: {said}", said, status
            )
        if status in _GATEWAY:
            return LabelStudioUnreachable(message, status)
        return LabelStudioRequestError(message, status)

    def _redact(self, text: str) -> str:
        # Label Studio echoes parts of requests and of ML backends' answers; keep the token out.
        return text.replace(self._token, "***") if self._token else text


class MeasuredTransport(httpx.BaseTransport):
    """Every request, the SDK's and our own, each retry included, counted and timed in
    `labelloop.metrics` (by method, endpoint and status code; the URL's ids left out)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method, endpoint = request.method, metrics.endpoint_of(request.url.path)
        start = time.monotonic()
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            _measured(method, endpoint, start, "error", type(exc).__name__)
            raise
        code = str(response.status_code)
        _measured(method, endpoint, start, code, code if response.status_code >= 400 else None)
        return response

    def close(self) -> None:
        self._inner.close()


def _measured(method: str, endpoint: str, start: float, code: str, error: str | None) -> None:
    metrics.LABEL_STUDIO_REQUEST_SECONDS.labels(method, endpoint).observe(time.monotonic() - start)
    metrics.LABEL_STUDIO_REQUESTS.labels(method, endpoint, code).inc()
    if error is not None:
        metrics.LABEL_STUDIO_REQUEST_ERRORS.labels(method, endpoint, error).inc()


def _dump(model: object) -> JSON:
    if isinstance(model, pydantic.BaseModel):
        return model.model_dump()
    if isinstance(model, dict):
        return model
    raise LabelStudioRequestError(f"unexpected answer from Label Studio: {type(model).__name__}")


def _field_errors(body: object) -> dict[str, Any]:
    """Per-field messages: Label Studio's envelope keeps them under validation_errors,
    plain DRF views (e.g. /api/projects/validate/) put them at the top level."""
    if not isinstance(body, dict):
        return {}
    errors = body.get("validation_errors")
    if isinstance(errors, dict):
        return errors
    return {k: v for k, v in body.items() if k not in _ENVELOPE}


def _describe(body: object) -> str:
    """Label Studio's own words from an error body."""
    if isinstance(body, dict):
        parts = []
        for field, messages in _field_errors(body).items():
            text = "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        if parts:
            return "; ".join(parts)
        return str(body.get("detail") or "")
    # An HTML error page says nothing useful.
    if isinstance(body, str) and not body.lstrip().startswith("<"):
        return body.strip()[:500]
    return ""


def _about_label_config(body: object) -> bool:
    """Whether a 400 to a request carrying a label config is about that config.

    It is, unless its field messages name only other fields (e.g. a too short title).
    """
    fields = set(_field_errors(body))
    return not fields or bool(fields & {"label_config", "non_field_errors"})
