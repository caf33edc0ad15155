"""What the fuzz tests throw at labelloop's HTTP endpoints: Hypothesis strategies for Label
Studio's payloads and their mutations, JSON of every shape, bad encodings and raw HTTP, and
the one property every answer must have.

The property (`check_answer`): a 2xx, or a 4xx whose body says what was wrong; never a 5xx.
A server that fails it, hangs (each request has a timeout) or stops answering afterwards
fails the test, and Hypothesis shrinks the input that did it.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Each fuzz test runs this many generated inputs (`make test` runs them all).
CASES = 2000
FUZZ = settings(
    max_examples=CASES,
    deadline=None,
    # No example database in the shared checkout; a failure prints its seed and input.
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TIMEOUT_S = 10.0
"""Any answer slower than this counts as a hang."""

JSON = Any

# --- JSON of every shape -------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    """Arrays or objects nested thousands deep: parsers that recurse overflow their stack."""
    depth = draw(st.integers(min_value=100, max_value=100_000))
    if draw(st.booleans()):
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


# --- Label Studio's payloads ---------------------------------------------------------------

LABEL_STUDIO_ACTIONS = (
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_CREATED",
    "TASKS_DELETED",
    "PROJECT_UPDATED",
    "START_TRAINING",
)
texts = st.text(max_size=300)


@st.composite
def label_studio_tasks(draw: st.DrawFn, field: str = "text") -> dict[str, JSON]:
    """A task as Label Studio sends it to an ML backend: the whole task, data included."""
    return {
        "id": draw(st.integers(min_value=1, max_value=10**9)),
        "data": {field: draw(texts)},
        "annotations": [],
        "predictions": [],
        "meta": {},
        "created_at": "2025-01-01T10:00:00.000000Z",
        "updated_at": "2025-01-01T10:00:00.000000Z",
        "inner_id": draw(st.integers(min_value=1, max_value=10**6)),
        "project": draw(st.integers(min_value=1, max_value=10**6)),
    }


@st.composite
def label_studio_events(draw: st.DrawFn) -> dict[str, JSON]:
    """A webhook event as Label Studio posts it."""
    action = draw(st.sampled_from(LABEL_STUDIO_ACTIONS) | st.text(max_size=20))
    project = {"id": draw(st.integers(min_value=1, max_value=10**6)), "title": draw(texts)}
    event: dict[str, JSON] = {"action": action, "project": project}
    if "TASK" in action:
        event["tasks"] = draw(st.lists(label_studio_tasks(), max_size=3))
    else:
        event["annotation"] = {
            "id": draw(st.integers(min_value=1, max_value=10**9)),
            "result": [
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "choices",
                    "value": {"choices": draw(st.lists(texts, max_size=2))},
                }
            ],
            "completed_by": draw(st.integers(min_value=1, max_value=10**4)),
            "was_cancelled": draw(st.booleans()),
            "lead_time": draw(st.floats(min_value=0, max_value=1e4)),
        }
        event["task"] = draw(label_studio_tasks())
    return event


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[JSON]) -> JSON:
    """A valid payload with a few random changes: a value replaced by JSON of another type,
    a key dropped, an unknown key added, a list emptied or grown."""
    value = draw(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        value = _mutate_once(draw, value)
    return value


def _mutate_once(draw: st.DrawFn, value: JSON) -> JSON:
    if isinstance(value, dict) and value and draw(st.integers(0, 3)) > 0:
        key = draw(st.sampled_from(sorted(value)))
        operation = draw(st.sampled_from(("descend", "replace", "drop", "add")))
        copy = dict(value)
        if operation == "descend":
            copy[key] = _mutate_once(draw, copy[key])
        elif operation == "replace":
            copy[key] = draw(json_values)
        elif operation == "drop":
            del copy[key]
        else:
            copy[draw(st.text(max_size=12))] = draw(json_values)
        return copy
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        copy_list = list(value)
        copy_list[index] = _mutate_once(draw, copy_list[index])
        return copy_list
    return draw(json_values)


# --- bodies: encodings, sizes ----------------------------------------------------------------


@st.composite
def encoded(draw: st.DrawFn, value: JSON) -> bytes:
    """`value` as JSON in an encoding a server may or may not expect."""
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    how = draw(st.sampled_from(("utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cut")))
    if how == "cut":  # cut anywhere, even inside a multi-byte character
        raw = text.encode()
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return text.encode(how, errors="replace")


def bodies(payloads: st.SearchStrategy[JSON]) -> st.SearchStrategy[bytes]:
    """Request bodies: payloads (mutated or not) in various encodings, random bytes, deep
    nesting, invalid UTF-8 inside JSON strings."""
    return st.one_of(
        payloads.flatmap(encoded),
        mutated(payloads).flatmap(encoded),
        json_values.flatmap(encoded),
        st.binary(max_size=2000),
        deeply_nested(),
        st.binary(min_size=1, max_size=50).map(
            lambda b: b'{"tasks": [{"data": {"text": "' + b + b'"}}]}'
        ),
    )


# --- raw HTTP ---------------------------------------------------------------------------------

header_names = st.binary(min_size=1, max_size=20).filter(
    lambda b: b":" not in b and b"\r\n" not in b
)


@st.composite
def raw_requests(draw: st.DrawFn, paths: st.SearchStrategy[bytes]) -> bytes:
    """HTTP/1.1 requests with garbage where a parser may not expect it: odd methods, bytes in
    paths and headers, wrong or conflicting lengths, bad chunking."""
    method = draw(
        st.sampled_from((b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"HEAD"))
        | st.binary(min_size=1, max_size=8)
    )
    path = draw(paths)
    body = draw(st.binary(max_size=500))
    headers = [(b"Host", b"localhost")]
    framing = draw(
        st.sampled_from(("length", "short", "long", "chunked", "bad-chunk", "none", "both"))
    )
    if framing in ("length", "both"):
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "short":
        headers.append((b"Content-Length", str(max(0, len(body) - 5)).encode()))
    elif framing == "long":  # more than is sent: the server must not wait forever
        headers.append((b"Content-Length", str(len(body) + 100).encode()))
    if framing in ("chunked", "bad-chunk", "both"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        if framing == "chunked":
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        else:
            body = b"zz\r\n" + body
    for _ in range(draw(st.integers(0, 4))):
        headers.append(
            (
                draw(header_names),
                draw(st.binary(max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b)),
            )
        )
    head = (
        method
        + b" "
        + path
        + b" HTTP/1.1\r\n"
        + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    )
    return head + b"Connection: close\r\n\r\n" + body


def send_raw(address: tuple[str, int], request: bytes) -> int | None:
    """Send `request` on a fresh connection, then close the sending side; the status of the
    answer, or None when the server closed the connection without one."""
    with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server already answered and closed
            pass
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            return None
    if not received:
        return None
    status_line = received.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2 and status_line[0].startswith(b"HTTP/"), received[:200]
    return int(status_line[1])


def check_answer(response: httpx.Response) -> None:
    """A 2xx, or a 4xx that says what was wrong; never a 5xx."""
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    if status >= 400:
        assert response.content.strip(), f"a {status} without a word of why"
