"""The webhook receiver over HTTP: per-project secrets that expire with the replay window,
replayed deliveries refused, every refusal a 4xx naming the problem, and HTTPS on request."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.receiver import START, Receiver, serving_receiver
from labelloop.controllers.webhooks import MAX_BODY_BYTES, tls_context
from labelloop.steps.webhook import SECRET_HEADER, HookSecrets, wanted_hook
from labelloop.steps.webhook import Receiver as HookReceiver

WINDOW = 600
SECRETS = HookSecrets(b"k" * 32, WINDOW)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving_receiver(SECRETS) as running:
        yield running


def post(receiver: Receiver, path: str, body: bytes, secret: str | None) -> httpx.Response:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return httpx.post(f"{receiver.url}{path}", content=body, headers=headers, timeout=10)


HOOK = "/webhook/team/reviews"


def test_the_projects_current_secret_wakes_the_project(receiver: Receiver) -> None:
    answer = post(
        receiver, HOOK, b'{"action": "ANNOTATION_CREATED"}', receiver.secret("team", "reviews")
    )
    assert (answer.status_code, answer.json()) == (202, {"woken": "team/reviews"})
    assert receiver.woken == [("team", "reviews")]


@pytest.mark.parametrize(
    ("secret", "status", "error"),
    [
        (None, 401, f"missing {SECRET_HEADER}"),
        ("", 401, f"missing {SECRET_HEADER}"),
        ("0" * 64, 403, f"wrong or expired {SECRET_HEADER}"),
        (SECRETS.current("team", "other", START), 403, f"wrong or expired {SECRET_HEADER}"),
        (SECRETS.current("team", "reviews", START)[:-1], 403, f"wrong or expired {SECRET_HEADER}"),
        # Not ASCII: compare_digest refuses to compare such text, so it is compared as bytes.
        ("é" * 64, 403, f"wrong or expired {SECRET_HEADER}"),
    ],
    ids=["none", "empty", "wrong", "another project's", "cut short", "not ASCII"],
)
def test_a_request_without_the_projects_secret_is_refused_and_wakes_nothing(
    receiver: Receiver, secret: str | None, status: int, error: str
) -> None:
    headers = {SECRET_HEADER.encode(): secret.encode()} if secret is not None else {}
    answer = httpx.post(f"{receiver.url}{HOOK}", content=b"{}", headers=headers)
    assert (answer.status_code, answer.json()) == (status, {"error": error})
    assert receiver.woken == []


@pytest.mark.parametrize(
    ("issued", "accepted"),
    [
        (START, True),
        (START - WINDOW, True),  # the window before: a request on its way while it changed
        (START - 2 * WINDOW, False),
        (START + WINDOW, False),  # not yet issued
    ],
)
def test_a_secret_is_accepted_in_its_window_and_the_next_only(
    issued: float, accepted: bool
) -> None:
    secret = SECRETS.current("team", "reviews", issued)
    assert SECRETS.accepts(secret, "team", "reviews", START) is accepted


def test_a_captured_secret_expires_two_windows_later(receiver: Receiver) -> None:
    captured = receiver.secret("team", "reviews")
    receiver.now[0] = START + WINDOW
    assert post(receiver, HOOK, b'{"n": 1}', captured).status_code == 202
    receiver.now[0] = START + 2 * WINDOW
    assert post(receiver, HOOK, b'{"n": 2}', captured).status_code == 403
    assert post(receiver, HOOK, b'{"n": 2}', receiver.secret("team", "reviews")).status_code == 202


def test_a_delivery_seen_before_is_a_replay(receiver: Receiver) -> None:
    secret = receiver.secret("team", "reviews")
    body = b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 7}}'
    assert post(receiver, HOOK, body, secret).status_code == 202
    again = post(receiver, HOOK, body, secret)
    assert (again.status_code, again.json()["error"]) == (
        409,
        "replayed delivery: this body was delivered before",
    )
    # The same body for another project is its own delivery.
    other = post(receiver, "/webhook/team/other", body, receiver.secret("team", "other"))
    assert other.status_code == 202
    assert receiver.woken == [("team", "reviews"), ("team", "other")]


def test_the_operator_registers_the_secret_the_receiver_accepts() -> None:
    hook = wanted_hook(HookReceiver("http://op.ns.svc:8081/", SECRETS), "team", "reviews", START)
    assert hook is not None
    url, secret = hook
    assert url == "http://op.ns.svc:8081/webhook/team/reviews"
    assert SECRETS.accepts(secret, "team", "reviews", START + WINDOW)
    assert wanted_hook(None, "team", "reviews", START) is None


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/webhook/Team/reviews", 404),  # not a DNS label
        ("/webhook/team/re_views", 404),
        ("/webhook/team", 404),
        ("/elsewhere", 404),
    ],
)
def test_paths_that_name_no_project_are_404s(receiver: Receiver, path: str, status: int) -> None:
    secret = receiver.secret("team", "reviews")
    assert post(receiver, path, b"{}", secret).status_code == status
    assert receiver.woken == []


def test_a_project_that_cannot_be_woken_is_a_404(receiver: Receiver) -> None:
    receiver.gone.add("deleted")
    answer = post(receiver, "/webhook/team/deleted", b"{}", receiver.secret("team", "deleted"))
    assert (answer.status_code, answer.json()) == (404, {"error": "project not woken"})


def test_a_body_over_the_limit_is_a_413(receiver: Receiver) -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    answer = post(receiver, HOOK, body, receiver.secret("team", "reviews"))
    assert answer.status_code == 413
    assert receiver.woken == []


def test_a_get_is_refused() -> None:
    with serving_receiver(SECRETS) as receiver:
        assert httpx.get(f"{receiver.url}{HOOK}").status_code == 405


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_with_a_certificate_the_receiver_speaks_https_only(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with serving_receiver(SECRETS, tls=tls_context(str(cert), str(key))) as receiver:
        assert receiver.url.startswith("https://")
        trusted = ssl.create_default_context(cafile=str(cert))
        answer = httpx.post(
            f"{receiver.url}{HOOK}",
            content=b"{}",
            headers={SECRET_HEADER: receiver.secret("team", "reviews")},
            verify=trusted,
        )
        assert answer.status_code == 202
        with pytest.raises(httpx.HTTPError):
            httpx.post(receiver.url.replace("https://", "http://") + HOOK, content=b"{}")


def test_a_malformed_request_is_refused_with_one_line_and_no_traceback(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp answers these 400 itself; left alone, it logs each as an error with a traceback.
    address = receiver.url.removeprefix("http://").split(":")
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    with socket.create_connection((address[0], int(address[1])), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/ml/p HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.0 400 ") or answer.startswith(b"HTTP/1.1 400 "), answer
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [(r.levelname, r.exc_info) for r in records] == [("INFO", None)]
    assert "Content-Length" in records[0].getMessage()
