"""The trainer's Label Studio reader (training.label_studio) and the export's exit codes,
against a fake server (httpx.MockTransport)."""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop_trainer.errors import BadInputError, TrainerError
from labelloop_trainer.training import export as export_mod
from labelloop_trainer.training.export import Source, export
from labelloop_trainer.training.label_studio import (
    LabelStudioReader,
    NotFound,
    Refused,
    Unreachable,
)

TOKEN = "secret-token-0123456789"
CONFIG = (
    '<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
    '<Choice value="pos"/><Choice value="neg"/></Choices></View>'
)
POS = build_result(parse_label_config(CONFIG), ["pos"])
TASKS = [
    {"id": 1, "data": {"text": "fine"}, "predictions": [3],
     "annotations": [{"id": 10, "result": POS, "was_cancelled": False, "ground_truth": False}]},
    {"id": 2, "data": {"text": "skipped"},
     "annotations": [{"id": 11, "result": [], "was_cancelled": True}]},
]  # fmt: skip

Handler = Callable[[httpx.Request], httpx.Response]


def label_studio(
    seen: list[httpx.Request], *, project: int = 7, status: int | None = None
) -> Handler:
    """A fake Label Studio with one project; `status` answers every request instead."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status is not None:
            return httpx.Response(status, json={"detail": f"no ({TOKEN})"})
        if request.url.path == "/api/token/refresh/":
            return httpx.Response(200, json={"access": "access-token-xyz"})
        if request.url.path == f"/api/projects/{project}/":
            return httpx.Response(200, json={"id": project, "label_config": CONFIG})
        if request.url.path == f"/api/projects/{project}/export":
            assert request.url.params["exportType"] == "JSON"
            return httpx.Response(200, json=TASKS)
        return httpx.Response(404, json={"detail": "Not found."})

    return handle


def reader(handler: Handler, token: str = TOKEN) -> LabelStudioReader:
    return LabelStudioReader(
        "http://ls:8080/", token, backoff=0.0, transport=httpx.MockTransport(handler)
    )


def test_reads_the_project_and_its_export_with_a_legacy_token() -> None:
    seen: list[httpx.Request] = []
    with reader(label_studio(seen)) as ls:
        assert ls.project(7).label_config == CONFIG
        tasks = ls.annotated_tasks(7)
    assert [t.id for t in tasks] == [1, 2]
    assert tasks[0].annotations[0].result == tuple(POS)
    assert tasks[1].annotations[0].was_cancelled
    assert {r.headers["Authorization"] for r in seen} == {f"Token {TOKEN}"}


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.signature"


def test_a_personal_access_token_is_exchanged_once_for_an_access_token() -> None:
    seen: list[httpx.Request] = []
    refresh = jwt({"token_type": "refresh", "exp": time.time() + 3600})
    with reader(label_studio(seen), refresh) as ls:
        ls.project(7)
        ls.annotated_tasks(7)
    assert [r.url.path for r in seen] == [
        "/api/token/refresh/",
        "/api/projects/7/",
        "/api/projects/7/export",
    ]
    assert json.loads(seen[0].content) == {"refresh": refresh}
    assert {r.headers["Authorization"] for r in seen[1:]} == {"Bearer access-token-xyz"}
    expired = jwt({"token_type": "refresh", "exp": time.time() - 1})
    with pytest.raises(Refused, match="expired"), reader(label_studio([]), expired) as ls:
        ls.project(7)


@pytest.mark.parametrize(
    ("status", "error", "tries"),
    [(401, Refused, 1), (403, Refused, 1), (404, NotFound, 1), (503, Unreachable, 4)],
)
def test_failures_are_classified_retried_and_redacted(
    status: int, error: type[Exception], tries: int
) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(error) as raised, reader(label_studio(seen, status=status)) as ls:
        ls.project(7)
    assert len(seen) == tries
    assert TOKEN not in str(raised.value) and "***" in str(raised.value)


def test_no_answer_is_unreachable_after_the_retries() -> None:
    tries: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        tries.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(Unreachable, match="no answer"), reader(refuse) as ls:
        ls.annotated_tasks(7)
    assert len(tries) == 4


@pytest.mark.parametrize(
    ("handler", "code", "phrase"),
    [
        (functools.partial(label_studio, status=401), 2, "LABEL_STUDIO_API_KEY: "),
        (functools.partial(label_studio, project=8), 2, "projectId: "),
        (functools.partial(label_studio, status=503), 1, "unreachable"),
        (functools.partial(label_studio, status=500), 1, "export failed"),
    ],
)
def test_the_export_exits_with_the_contract_codes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    handler: Callable[[list[httpx.Request]], Handler],
    code: int,
    phrase: str,
) -> None:
    transport = httpx.MockTransport(handler([]))
    monkeypatch.setattr(
        export_mod,
        "LabelStudioReader",
        functools.partial(LabelStudioReader, backoff=0.0, transport=transport),
    )
    with pytest.raises(TrainerError) as raised:
        export(Source("http://ls:8080", 7, None), TOKEN, tmp_path / "out.jsonl")
    assert raised.value.exit_code == code
    assert phrase in str(raised.value) and TOKEN not in str(raised.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_the_export_writes_the_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    transport = httpx.MockTransport(label_studio([]))
    monkeypatch.setattr(
        export_mod, "LabelStudioReader", functools.partial(LabelStudioReader, transport=transport)
    )
    manifest = export(Source("http://ls:8080", 7, None), TOKEN, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows == [{"text": "fine", "label": "pos", "taskId": 1, "annotationIds": [10]}]
    assert manifest["skippedAnnotations"] == {"cancelled": 1}
    with pytest.raises(BadInputError, match="no usable annotation up to lastAnnotationId 5"):
        export(Source("http://ls:8080", 7, 5), TOKEN, tmp_path / "none.jsonl")
