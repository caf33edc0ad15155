"""A client of a prelabel server speaking Label Studio's ML backend protocol.

Label Studio calls a backend's `/predict` itself when a person opens a task, but it keeps only
`result`, `score` and `model_version` of each answer. Active learning needs more than that
(every label's probability, for the margin and entropy strategies) and needs it before choosing
which tasks to prelabel first, so labelloop asks the backend directly, exactly as Label Studio
would, and then imports the chosen predictions in one request (`LabelStudioClient
.import_predictions`).

Its failures are `MLBackendError`s, not Label Studio errors: a prelabel server that is down
must not read as Label Studio being down.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from .models import Task

JSON = dict[str, Any]


class MLBackendError(Exception):
    """The prelabel server did not answer, refused the request or answered nonsense."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class MLBackendClient:
    """One prelabel server at `url`, with optional basic-auth credentials."""

    def __init__(
        self, url: str, timeout: float = 120.0, auth: tuple[str, str] | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, auth=auth)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MLBackendClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def model_version(self) -> str:
        """The version the server is serving now (from `/health`)."""
        version = self._request("GET", "/health").get("model_version")
        if not isinstance(version, str) or not version:
            raise MLBackendError(f"ML backend at {self.url}/health: no model_version")
        return version

    def predict(
        self, tasks: Sequence[JSON], label_config: str, project_id: int | None = None
    ) -> list[JSON]:
        """One prediction per task, in order, as the server returns them: `result`, `score`,
        `model_version` and, for classification, `probabilities`."""
        body: JSON = {"tasks": list(tasks), "label_config": label_config}
        if project_id is not None:
            body["project"] = str(project_id)
        results = self._request("POST", "/predict", body).get("results")
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise MLBackendError(f"ML backend at {self.url}/predict: no list of results")
        if len(results) != len(tasks):
            raise MLBackendError(
                f"ML backend at {self.url} answered {len(results)} predictions "
                f"for {len(tasks)} tasks"
            )
        return results

    def predict_tasks(
        self, tasks: Sequence[Task], label_config: str, project_id: int, chunk: int
    ) -> Iterator[dict[int, JSON]]:
        """Each chunk of `chunk` Label Studio tasks, asked as Label Studio would ask (id and
        data), as its answers by task id; a chunk at a time, so a caller keeps what earlier
        chunks answered when a later one fails."""
        for start in range(0, len(tasks), chunk):
            part = tasks[start : start + chunk]
            answers = self.predict(
                [{"id": t.id, "data": t.data} for t in part], label_config, project_id
            )
            yield {t.id: a for t, a in zip(part, answers, strict=True)}

    def _request(self, method: str, path: str, body: JSON | None = None) -> JSON:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise MLBackendError(
                f"ML backend at {self.url}{path}: no answer ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise MLBackendError(
                f"ML backend at {self.url}{path}: HTTP {response.status_code}: "
                f"{response.text[:300]}",
                response.status_code,
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise MLBackendError(f"ML backend at {self.url}{path}: not a JSON object")
        return answer
