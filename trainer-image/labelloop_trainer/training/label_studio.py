"""The two Label Studio reads an export needs, over plain httpx.

`project` reads a project's label config (`GET /api/projects/{id}/`), `annotated_tasks` its
JSON export (`GET /api/projects/{id}/export?exportType=JSON`), parsed into small typed
structures. That is all the trainer asks of Label Studio, so it never loads the
operator's SDK-based client (nor the SDK).

The token authenticates every request: a legacy API token as `Authorization: Token …`, a
personal access token (a JWT refresh token) exchanged once at `/api/token/refresh/` for an
access token sent as `Bearer`. Every request is a read, so each is tried again, with waits
doubling from `backoff`, when the connection fails or Label Studio answers 408, 429 or 5xx.
The token (and its access token) is removed from every message, and no exception raised
here carries the request, whose headers hold it.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})


class LabelStudioFailure(Exception):
    """Label Studio could not be asked, or answered with an error; the message is redacted."""


class Unreachable(LabelStudioFailure):
    """No answer (or a gateway's 502/503/504) after the retries."""


class Refused(LabelStudioFailure):
    """The token was refused (401, 403) or cannot be used (an expired access token)."""


class NotFound(LabelStudioFailure):
    """The project does not exist (404)."""


@dataclass(frozen=True)
class Project:
    """A project, as far as an export needs it."""

    id: int
    label_config: str


@dataclass(frozen=True)
class ExportedAnnotation:
    """One annotation of an exported task."""

    id: int
    result: tuple[dict[str, Any], ...]
    was_cancelled: bool
    """A skipped task: an annotation without an answer."""
    ground_truth: bool


@dataclass(frozen=True)
class ExportedTask:
    """One task of Label Studio's JSON export: its data and its annotations."""

    id: int
    data: Mapping[str, Any]
    annotations: tuple[ExportedAnnotation, ...]

    @classmethod
    def from_json(cls, raw: Any) -> ExportedTask:
        """A task of the export; LabelStudioFailure when it is not shaped like one."""
        try:
            return cls(
                id=int(raw["id"]),
                data=dict(raw.get("data") or {}),
                annotations=tuple(
                    ExportedAnnotation(
                        id=int(a["id"]),
                        result=tuple(a.get("result") or ()),
                        was_cancelled=bool(a.get("was_cancelled")),
                        ground_truth=bool(a.get("ground_truth")),
                    )
                    for a in raw.get("annotations") or ()
                ),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise LabelStudioFailure(f"unexpected task in the export: {err!r}") from None


class LabelStudioReader:
    """Reads from one Label Studio server with one token. Use it as a context manager."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 10.0,
        export_timeout: float = 300.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._secrets = [token]
        self._export_timeout = export_timeout
        self._retries = retries
        self._backoff = backoff
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)
        self._authorization: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def project(self, project_id: int) -> Project:
        """The project's id and label config."""
        raw = self._get(f"get project {project_id}", f"/api/projects/{project_id}/")
        if not isinstance(raw, dict) or not isinstance(raw.get("label_config"), str):
            raise LabelStudioFailure(f"get project {project_id}: not a project: {type(raw)}")
        return Project(int(raw.get("id", project_id)), raw["label_config"])

    def annotated_tasks(self, project_id: int) -> list[ExportedTask]:
        """The project's tasks that have annotations, as Label Studio's JSON export."""
        raw = self._get(
            f"export project {project_id}",
            f"/api/projects/{project_id}/export",
            params={"exportType": "JSON"},
            timeout=self._export_timeout,
        )
        if not isinstance(raw, list):
            raise LabelStudioFailure(f"export project {project_id}: not a list of tasks")
        return [ExportedTask.from_json(t) for t in raw]

    # -- plumbing ---------------------------------------------------------------------------

    def _get(
        self,
        what: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {"Authorization": self._auth_header()}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = self._retried(
            what, lambda: self._http.get(path, params=params, headers=headers, **extra)
        )
        try:
            return response.json()
        except ValueError:
            raise LabelStudioFailure(f"{what} at {self.url}: the answer is not JSON") from None

    def _auth_header(self) -> str:
        if self._authorization is None:
            self._authorization = self._authenticate()
        return self._authorization

    def _authenticate(self) -> str:
        """The Authorization header of the token (see the module docstring)."""
        claims = _jwt_claims(self._token)
        if claims is None:
            return f"Token {self._token}"
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires < time.time():
            raise Refused(f"authenticate at {self.url}: the token has no expiry or has expired")
        if claims.get("token_type") != "refresh":
            return f"Bearer {self._token}"  # already an access token
        response = self._retried(
            "authenticate",
            lambda: self._http.post("/api/token/refresh/", json={"refresh": self._token}),
        )
        try:
            access = response.json()["access"]
        except (ValueError, KeyError, TypeError):
            raise LabelStudioFailure(f"authenticate at {self.url}: no access token") from None
        self._secrets.append(str(access))
        return f"Bearer {access}"

    def _retried(self, what: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        """`send()` until it answers below 400, with retries; failures as LabelStudioFailure."""
        where = f"{what} at {self.url}"
        attempt = 0
        while True:
            failure: LabelStudioFailure
            try:
                response = send()
            except httpx.TransportError as err:
                failure = Unreachable(self._redact(f"{where}: no answer ({type(err).__name__})"))
                retry = True
            else:
                if response.status_code < 400:
                    return response
                failure = self._failure(where, response)
                retry = response.status_code in TRANSIENT
            if not retry or attempt >= self._retries:
                raise failure
            time.sleep(self._backoff * 2**attempt)
            attempt += 1

    def _failure(self, where: str, response: httpx.Response) -> LabelStudioFailure:
        status = response.status_code
        said = self._redact(_describe(response))
        if status in (401, 403):
            return Refused(f"{where}: the token was refused: {said}")
        if status == 404:
            return NotFound(f"{where}: {said}")
        if status in (502, 503, 504):
            return Unreachable(f"{where}: {said}")
        return LabelStudioFailure(f"{where}: {said}")

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def _describe(response: httpx.Response) -> str:
    """Label Studio's reason for an error answer, or its status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    text = detail if isinstance(detail, str) else response.text.strip()[:300]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


def _jwt_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT (unverified: only to know how to send it); None for a legacy token."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None
