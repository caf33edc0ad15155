"""A client of a prelabel server speaking Label Studio's ML backend protocol.

Label Studio calls a backend's `/predict` itself when a person opens a task, but it keeps only
`result`, `score` and `model_version` of each answer. Active learning needs more than that
(every label's probability, for the margin and entropy strategies) and needs it before choosing
which tasks to prelabel first, so labelloop asks the backend directly, exactly as Label Studio
would, and then imports the chosen predictions in one request (`LabelStudioClient
.import_predictions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from .errors import LabelStudioRequestError, LabelStudioUnreachable

JSON = dict[str, Any]


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
        version: str = self._request("GET", "/health")["model_version"]
        return version

    def predict(
        self, tasks: Sequence[JSON], label_config: str, project_id: int | None = None
    ) -> list[JSON]:
        """One prediction per task, in order, as the server returns them: `result`, `score`,
        `model_version` and, for classification, `probabilities`."""
        body: JSON = {"tasks": list(tasks), "label_config": label_config}
        if project_id is not None:
            body["project"] = str(project_id)
        results: list[JSON] = self._request("POST", "/predict", body)["results"]
        if len(results) != len(tasks):
            raise LabelStudioRequestError(
                f"ML backend at {self.url} answered {len(results)} predictions "
                f"for {len(tasks)} tasks"
            )
        return results

    def _request(self, method: str, path: str, body: JSON | None = None) -> JSON:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise LabelStudioUnreachable(
                f"ML backend at {self.url}{path}: no answer ({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            raise LabelStudioRequestError(
                f"ML backend at {self.url}{path}: HTTP {response.status_code}: "
                f"{response.text[:300]}",
                response.status_code,
            )
        answer: JSON = response.json()
        return answer
