"""The webhook receiver under generated inputs: Label Studio's events and their mutations,
JSON of any shape and depth, bad encodings, wrong secrets and paths, raw HTTP garbage and
slow clients. Every answer is a 2xx or a 4xx saying why, and the receiver answers afterwards."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixtures.receiver import Receiver, serving_receiver
from fuzzing import (
    FUZZ,
    TIMEOUT_S,
    bodies,
    check_answer,
    label_studio_events,
    raw_requests,
    send_raw,
)
from labelloop.steps.webhook import SECRET_HEADER, HookSecrets

pytestmark = pytest.mark.fuzz

SECRETS = HookSecrets(b"fuzz" * 8, 600)
HOOK = "/webhook/team/reviews"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving_receiver(SECRETS) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT_S) as http:
        yield http


_unique = itertools.count()


def still_answers(receiver: Receiver, client: httpx.Client) -> None:
    """A fresh, valid delivery is accepted and wakes its project."""
    body = f'{{"action": "ANNOTATION_CREATED", "probe": {next(_unique)}}}'.encode()
    answer = client.post(
        f"{receiver.url}{HOOK}",
        content=body,
        headers={SECRET_HEADER: receiver.secret("team", "reviews")},
    )
    assert answer.status_code == 202, answer.text


@FUZZ
@given(body=bodies(label_studio_events()))
def test_any_body_with_the_right_secret_is_taken_once(
    receiver: Receiver, client: httpx.Client, body: bytes
) -> None:
    secret = receiver.secret("team", "reviews")
    answer = client.post(f"{receiver.url}{HOOK}", content=body, headers={SECRET_HEADER: secret})
    check_answer(answer)
    # Never parsed: any body is a wake-up, unless this very body came before.
    assert answer.status_code in (202, 409), answer.text


# What an HTTP client sends (no control characters, UTF-8); raw bytes go through the raw test.
header_values = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=80).map(
    str.strip
)


@FUZZ
@given(
    project=st.tuples(st.text(max_size=70), st.text(max_size=70)),
    secret=st.none() | header_values,
    body=bodies(label_studio_events()),
)
def test_wrong_paths_and_secrets_are_refused_with_the_reason(
    receiver: Receiver,
    client: httpx.Client,
    project: tuple[str, str],
    secret: str | None,
    body: bytes,
) -> None:
    path = "/webhook/" + "/".join(quote(part, safe="") for part in project)
    headers = {} if secret is None else {SECRET_HEADER.encode(): secret.encode()}
    answer = client.post(receiver.url + path, content=body, headers=headers)
    check_answer(answer)
    assert answer.status_code in (401, 403, 404), answer.text


paths = st.one_of(
    st.just(HOOK.encode()),
    st.binary(min_size=1, max_size=80),
    st.text(max_size=60).map(lambda t: ("/webhook/" + t).encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(request=raw_requests(paths))
def test_raw_http_garbage_never_gets_a_5xx(
    receiver: Receiver, client: httpx.Client, request: bytes
) -> None:
    parts = urlsplit(receiver.url)
    status = send_raw((parts.hostname or "", parts.port or 80), request)
    assert status is None or status < 500, status


def test_slow_clients_do_not_hold_up_others(receiver: Receiver, client: httpx.Client) -> None:
    parts = urlsplit(receiver.url)
    address = (parts.hostname or "", parts.port or 80)
    secret = receiver.secret("team", "reviews")
    slow = []
    for i in range(50):
        sock = socket.create_connection(address, timeout=TIMEOUT_S)
        # Headers that never end, or a body that never comes.
        if i % 2:
            sock.sendall(b"POST " + HOOK.encode() + b" HTTP/1.1\r\nHost: x\r\n")
        else:
            sock.sendall(
                f"POST {HOOK} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {secret}\r\n"
                "Content-Length: 1000000\r\n\r\n{".encode()
            )
        slow.append(sock)
    try:
        started = time.monotonic()
        still_answers(receiver, client)
        assert time.monotonic() - started < 5
    finally:
        for sock in slow:
            sock.close()
    still_answers(receiver, client)


def test_the_receiver_answers_after_the_fuzzing(receiver: Receiver, client: httpx.Client) -> None:
    still_answers(receiver, client)
