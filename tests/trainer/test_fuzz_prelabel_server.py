"""The prelabel server under generated inputs, on a tiny model's zero-shot prelabeler:
Label Studio's /predict, /setup and /webhook requests and their mutations, JSON of any shape
and depth, bad encodings, wrong credentials, raw HTTP garbage and slow clients. Every answer
is a 2xx or a 4xx naming the problem, and the server answers afterwards."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import (
    FUZZ,
    TIMEOUT_S,
    bodies,
    check_answer,
    label_studio_events,
    label_studio_tasks,
    raw_requests,
    send_raw,
)
from labelloop_trainer.serving.app import BasicAuth, Limits
from labelloop_trainer.serving.server import PATHS, build_server, serving
from labelloop_trainer.serving.zeroshot import ZeroShotScorer

pytestmark = [pytest.mark.trainer, pytest.mark.fuzz]

MAX_TASKS = 50
AUTH = BasicAuth("labelstudio", "s3cret")


@pytest.fixture(scope="module")
def scorer(tiny_model: Path) -> ZeroShotScorer:
    return ZeroShotScorer(tiny_model, device="cpu")


@pytest.fixture(scope="module")
def url(scorer: ZeroShotScorer) -> Iterator[str]:
    with serving(build_server(scorer, limits=Limits(max_tasks=MAX_TASKS))) as address:
        yield address


@pytest.fixture(scope="module")
def guarded(scorer: ZeroShotScorer) -> Iterator[str]:
    """The same model behind basic auth, as a PrelabelService may run it."""
    with serving(build_server(scorer, auth=AUTH)) as address:
        yield address


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT_S) as http:
        yield http


def still_answers(url: str, client: httpx.Client) -> None:
    body = {
        "tasks": [{"id": 1, "data": {"text": "still there?"}}],
        "label_config": config("text", ["yes", "no"]),
    }
    answer = client.post(f"{url}/predict", json=body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == 1


def config(field: str, labels: list[str], choice: str = "single") -> str:
    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    return (
        f'<View><Text name="text" value="${field}"/>'
        f'<Choices name="label" toName="text" choice="{choice}">{choices}</Choices></View>'
    )


NER = (
    '<View><Text name="text" value="$text"/><Labels name="ner" toName="text">'
    '<Label value="NAME"/></Labels></View>'
)
fields = st.sampled_from(["text", "sentence"]) | st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
labels = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8)


@st.composite
def label_configs(draw: st.DrawFn, field: str) -> str:
    """Configs the zero-shot prelabeler serves, ones it refuses (multi-label, NER), broken XML
    and text that is no config at all."""
    return draw(
        st.one_of(
            labels.map(lambda ls: config(field, ls)),
            labels.map(lambda ls: config(field, ls, "multiple")),
            st.just(NER),
            labels.map(lambda ls: config(field, ls)[: len(ls) * 7]),
            st.text(max_size=200),
        )
    )


@st.composite
def predict_requests(draw: st.DrawFn) -> dict[str, Any]:
    """/predict as Label Studio sends it: its tasks whole, the project and its label config."""
    field = draw(fields)
    request: dict[str, Any] = {
        "tasks": draw(st.lists(label_studio_tasks(field), max_size=MAX_TASKS + 10)),
        "project": draw(st.from_regex(r"[0-9]{1,4}\.[0-9]{10}", fullmatch=True) | st.integers()),
        "label_config": draw(label_configs(field)),
        "params": {"login": None, "password": None, "context": None},
    }
    if draw(st.booleans()):
        request["model_version"] = draw(st.text(max_size=30))
    return request


@st.composite
def setup_requests(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(fields)
    return {
        "project": draw(st.from_regex(r"[0-9]{1,4}\.[0-9]{10}", fullmatch=True)),
        "schema": draw(label_configs(field)),
        "hostname": "http://label-studio.team.svc:8080",
        "access_token": draw(st.text(max_size=40)),
        "model_version": draw(st.text(max_size=30)),
        "extra_params": draw(st.none() | st.dictionaries(st.text(max_size=5), st.text())),
    }


@FUZZ
@given(body=bodies(predict_requests()))
def test_predict_answers_or_names_the_problem(url: str, client: httpx.Client, body: bytes) -> None:
    answer = client.post(f"{url}/predict", content=body)
    check_answer(answer)
    assert answer.status_code in (200, 400, 413, 422), answer.text
    if answer.status_code == 200:
        assert answer.json()["results"] is not None
    else:
        assert answer.json()["field"], answer.text


@FUZZ
@given(body=bodies(setup_requests()))
def test_setup_answers_or_names_the_problem(url: str, client: httpx.Client, body: bytes) -> None:
    answer = client.post(f"{url}/setup", content=body)
    check_answer(answer)
    assert answer.status_code in (200, 400, 422), answer.text


@FUZZ
@given(body=bodies(label_studio_events()))
def test_webhook_answers_or_names_the_problem(url: str, client: httpx.Client, body: bytes) -> None:
    answer = client.post(f"{url}/webhook", content=body)
    check_answer(answer)
    assert answer.status_code in (200, 400), answer.text


# Stripped: an HTTP client sends no header value with spaces around it.
credentials = st.one_of(
    st.tuples(st.text(max_size=20), st.text(max_size=20)).map(
        lambda up: "Basic " + base64.b64encode(f"{up[0]}:{up[1]}".encode()).decode()
    ),
    st.binary(max_size=40).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
).map(str.strip)


@FUZZ
@given(
    path=st.sampled_from(["/setup", "/predict", "/webhook"]),
    authorization=credentials,
    body=bodies(predict_requests()),
)
def test_wrong_credentials_are_401s(
    guarded: str, client: httpx.Client, path: str, authorization: str, body: bytes
) -> None:
    answer = client.post(f"{guarded}{path}", content=body, headers={"Authorization": authorization})
    check_answer(answer)
    assert answer.status_code == 401, answer.text


paths = st.one_of(
    st.sampled_from(PATHS).map(str.encode),
    st.sampled_from(PATHS).flatmap(
        lambda p: st.binary(max_size=30).map(lambda q: p.encode() + b"?" + q)
    ),
    st.binary(min_size=1, max_size=80),
)


@FUZZ
@given(request=raw_requests(paths))
def test_raw_http_garbage_never_gets_a_5xx(url: str, request: bytes) -> None:
    parts = urlsplit(url)
    status = send_raw((parts.hostname or "", parts.port or 80), request)
    assert status is None or status < 500, status


def test_slow_clients_do_not_hold_up_others(url: str, client: httpx.Client) -> None:
    parts = urlsplit(url)
    address = (parts.hostname or "", parts.port or 80)
    slow = []
    for i in range(50):
        sock = socket.create_connection(address, timeout=TIMEOUT_S)
        if i % 2:  # headers that never end
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
        else:  # a body that never comes
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")
        slow.append(sock)
    try:
        started = time.monotonic()
        still_answers(url, client)
        assert time.monotonic() - started < 5
    finally:
        for sock in slow:
            sock.close()
    still_answers(url, client)


def test_the_server_answers_after_the_fuzzing(url: str, client: httpx.Client) -> None:
    still_answers(url, client)
    assert client.get(f"{url}/health").status_code == 200
