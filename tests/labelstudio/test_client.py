"""LabelStudioClient against the real Label Studio server of the `label_studio` fixture."""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fixtures.labelstudio import LabelStudioServer, LabelStudioStartError, free_port
from labelloop.api.labelconfig import build_result, parse_label_config, read_result
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.errors import (
    LabelConfigRejected,
    LabelStudioAuthError,
    LabelStudioNotFound,
    LabelStudioRequestError,
    LabelStudioUnreachable,
)
from paths import gold_sentences

pytestmark = pytest.mark.labelstudio

SENTIMENT = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>'
    "</Choices></View>"
)
SCHEMA = parse_label_config(SENTIMENT)

# What a test receiver answers to (path, JSON body); GETs have an empty body.
Reply = Callable[[str, dict[str, Any]], dict[str, Any]]


def dynasent(count: int) -> list[dict[str, str]]:
    """Real review sentences (DynaSent R1, CC BY 4.0), each with its gold label in `gold`."""
    return gold_sentences(count, SCHEMA.labels)


@pytest.fixture
def client(label_studio: LabelStudioServer) -> Iterator[LabelStudioClient]:
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        yield client


@pytest.fixture
def project(client: LabelStudioClient) -> int:
    return client.create_project(f"test {secrets.token_hex(4)}", "from the tests", SENTIMENT)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording what it is sent; `reply(path, body)` answers."""

    reply: Reply
    status: int = 200
    requests: list[tuple[str, str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    url: str = ""

    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _, _ in self.requests]

    def posted(self, path: str) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, body) for method, p, h, body in self.requests if (method, p) == ("POST", path)]


Serve = Callable[[Reply], Receiver]


@pytest.fixture
def receiver() -> Iterator[Serve]:
    servers: list[ThreadingHTTPServer] = []

    def serve(reply: Reply) -> Receiver:
        record = Receiver(reply)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                record.requests.append(("GET", self.path, dict(self.headers), {}))
                self._answer(record.reply(self.path, {}))

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(size) or b"{}")
                record.requests.append(("POST", self.path, dict(self.headers), body))
                self._answer(record.reply(self.path, body))

            def _answer(self, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(record.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the assertions say what was received."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        record.url = f"http://127.0.0.1:{server.server_address[1]}"
        return record

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def ml_backend_reply(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Label Studio's ML backend protocol: /setup names the model version, /predict answers
    one result per task."""
    if path == "/health":
        return {"status": "UP", "model_class": "TestBackend"}
    if path == "/setup":
        return {"model_version": "test-v1"}
    if path == "/predict":
        result = build_result(SCHEMA, ["neutral"], score=0.4)
        return {
            "results": [
                {"result": result, "score": 0.4, "model_version": "test-v1"} for _ in body["tasks"]
            ]
        }
    return {}


def test_health(client: LabelStudioClient) -> None:
    client.health()


def test_create_and_update_project(client: LabelStudioClient) -> None:
    project_id = client.create_project("Sentiment", "DynaSent sentences", SENTIMENT)
    created = client.get_project(project_id)
    assert (created.title, created.description, created.task_count) == (
        "Sentiment",
        "DynaSent sentences",
        0,
    )
    assert parse_label_config(created.label_config) == SCHEMA

    relabelled = SENTIMENT.replace('<Choice value="neutral"/>', '<Choice value="mixed"/>')
    updated = client.update_project(
        project_id, description="now with mixed", label_config=relabelled
    )
    assert (updated.title, updated.description) == ("Sentiment", "now with mixed")
    assert "mixed" in parse_label_config(client.get_project(project_id).label_config).labels


@pytest.mark.parametrize(
    ("config", "said"),
    [
        pytest.param(SENTIMENT.replace('toName="text"', 'toName="nope"'), 'toName="nope"', id="to"),
        pytest.param("<View><Text", "line 1", id="xml"),  # each endpoint words it differently
    ],
)
def test_bad_label_config_carries_label_studios_message(
    client: LabelStudioClient, project: int, config: str, said: str
) -> None:
    with pytest.raises(LabelConfigRejected) as on_create:
        client.create_project("Broken", "", config)
    with pytest.raises(LabelConfigRejected) as on_update:
        client.update_project(project, label_config=config)
    with pytest.raises(LabelConfigRejected) as on_validate:
        client.validate_label_config(config)
    with pytest.raises(LabelConfigRejected) as on_validate_for_project:
        client.validate_label_config(config, project_id=project)
    for raised in (on_create, on_update, on_validate, on_validate_for_project):
        assert said in raised.value.detail
        assert said in str(raised.value)
    client.validate_label_config(SENTIMENT)
    client.validate_label_config(SENTIMENT, project_id=project)


def test_other_refusals_are_request_errors(client: LabelStudioClient) -> None:
    with pytest.raises(LabelStudioRequestError, match=r"title: .*at least 3 characters"):
        client.create_project("ab", "", SENTIMENT)
    with pytest.raises(LabelStudioNotFound, match="No Project matches"):
        client.get_project(999_999)
    with pytest.raises(LabelStudioNotFound):
        list(client.iter_tasks(999_999))


def test_bad_token_is_an_auth_error(label_studio: LabelStudioServer) -> None:
    wrong = "f" * 40
    with LabelStudioClient(label_studio.url, wrong) as client:
        with pytest.raises(LabelStudioAuthError, match="Invalid token") as raised:
            client.health()
        assert raised.value.status_code == 401
        assert wrong not in str(raised.value)
        with pytest.raises(LabelStudioAuthError):
            client.create_project("Nope", "", SENTIMENT)


def test_unreachable_url_fails_quickly(label_studio: LabelStudioServer) -> None:
    began = time.monotonic()
    nowhere = f"http://127.0.0.1:{free_port()}"
    with (
        LabelStudioClient(nowhere, label_studio.token) as client,
        pytest.raises(LabelStudioUnreachable, match="ConnectError") as raised,
    ):
        client.get_project(1)
    assert time.monotonic() - began < 8.0  # three retries: 0.5 + 1 + 2 s of backoff
    assert label_studio.token not in str(raised.value)


def test_gateway_errors_retry_only_idempotent_requests(
    receiver: Serve,
) -> None:
    gateway = receiver(lambda path, body: {"detail": "upstream down"})
    gateway.status = 503
    with LabelStudioClient(gateway.url, "t" * 40, retries=2, backoff=0.05) as client:
        with pytest.raises(LabelStudioUnreachable, match="upstream down"):
            client.get_project(7)
        assert gateway.paths() == ["GET /api/projects/7/"] * 3
        gateway.requests.clear()
        with pytest.raises(LabelStudioUnreachable):
            client.import_tasks(7, [{"text": "once"}])
        assert len(gateway.requests) == 1  # a second import could duplicate the tasks


def test_import_and_page_through_tasks(client: LabelStudioClient, project: int) -> None:
    tasks = dynasent(230)
    assert client.import_tasks(project, tasks) == 230

    listed = list(client.iter_tasks(project, page_size=100))
    assert [t.data for t in listed] == tasks
    assert len({t.id for t in listed}) == 230
    assert all(not t.annotations and not t.predictions for t in listed)
    assert client.get_project(project).task_count == 230


def test_annotations_and_predictions_read_back(client: LabelStudioClient, project: int) -> None:
    client.import_tasks(project, dynasent(3))
    first, second, _ = list(client.iter_tasks(project))

    annotation = client.create_annotation(first.id, build_result(SCHEMA, [first.data["gold"]]))
    prediction = client.create_prediction(
        second.id, build_result(SCHEMA, ["negative"], 0.62), score=0.62, model_version="v3"
    )
    assert annotation.task_id == first.id and annotation.completed_by is not None
    assert (prediction.score, prediction.model_version) == (0.62, "v3")

    by_id = {t.id: t for t in client.iter_tasks(project)}
    (read,) = by_id[first.id].annotations
    assert read.id == annotation.id and read.completed_by == annotation.completed_by
    assert read_result(SCHEMA, read.result) == [first.data["gold"]]
    assert read.created_at is not None and not read.ground_truth and not read.was_cancelled
    (predicted,) = by_id[second.id].predictions
    assert (predicted.id, predicted.score, predicted.model_version) == (prediction.id, 0.62, "v3")
    assert read_result(SCHEMA, predicted.result) == ["negative"]

    exported = {t["id"]: t for t in client.export_annotations(project)}
    assert read_result(SCHEMA, exported[first.id]["annotations"][0]["result"]) == [
        first.data["gold"]
    ]
    with pytest.raises(LabelStudioRequestError, match="completed_by"):
        client.create_annotation(second.id, read.result, completed_by=999_999)


def test_webhooks(
    client: LabelStudioClient,
    project: int,
    receiver: Serve,
) -> None:
    hooks = receiver(lambda path, body: {})
    webhook = client.create_webhook(
        project, f"{hooks.url}/events", ["ANNOTATION_CREATED"], headers={"X-Labelloop": "s3cret"}
    )
    assert (webhook.project_id, webhook.actions, webhook.send_for_all_actions) == (
        project,
        ("ANNOTATION_CREATED",),
        False,
    )
    assert [w.id for w in client.list_webhooks(project)] == [webhook.id]

    client.import_tasks(project, dynasent(1))
    (task,) = client.iter_tasks(project)
    client.create_annotation(task.id, build_result(SCHEMA, ["positive"]))
    ((headers, event),) = hooks.posted("/events")  # sent inside the annotation request
    assert event["action"] == "ANNOTATION_CREATED"
    assert event["annotation"]["task"] == task.id
    assert headers["X-Labelloop"] == "s3cret"

    updated = client.update_webhook(webhook.id, actions=(), headers={"X-Labelloop": "rotated"})
    assert (updated.send_for_all_actions, updated.headers) == (True, {"X-Labelloop": "rotated"})
    paused = client.update_webhook(webhook.id, is_active=False)
    assert not paused.is_active and paused.headers == {"X-Labelloop": "rotated"}

    client.delete_webhook(webhook.id)
    assert client.list_webhooks(project) == []


def test_ml_backend_registration(
    client: LabelStudioClient,
    project: int,
    receiver: Serve,
) -> None:
    backend_server = receiver(ml_backend_reply)
    backend = client.create_ml_backend(project, backend_server.url, "prelabel", timeout=30)
    assert (backend.state, backend.model_version, backend.project_id) == ("CO", "test-v1", project)
    assert backend_server.paths()[:2] == ["GET /health", "POST /setup"]
    _, setup = backend_server.posted("/setup")[0]
    assert setup["schema"] == SENTIMENT and setup["project"].startswith(f"{project}.")
    # Label Studio subscribes the backend to every event of the project.
    assert [w.url for w in client.list_webhooks(project)] == [f"{backend_server.url}/webhook"]

    client.import_tasks(project, dynasent(3))
    first, second, third = list(client.iter_tasks(project))
    client.request_predictions(project, [first.id, second.id])
    predicted = {t.id: t.predictions for t in client.iter_tasks(project)}
    for task in (first, second):
        (prediction,) = predicted[task.id]
        assert (prediction.model_version, prediction.score) == ("test-v1", 0.4)
        assert read_result(SCHEMA, prediction.result) == ["neutral"]
    assert predicted[third.id] == ()
    asked = [t["id"] for _, body in backend_server.posted("/predict") for t in body["tasks"]]
    assert sorted(asked) == [first.id, second.id]

    renamed = client.update_ml_backend(backend.id, project, title="prelabel v2")
    assert [(b.id, b.title) for b in client.list_ml_backends(project)] == [
        (backend.id, "prelabel v2")
    ]
    assert renamed.url == backend_server.url

    with pytest.raises(LabelStudioRequestError, match="health check failed"):
        client.create_ml_backend(project, f"http://127.0.0.1:{free_port()}", "nobody home")

    client.delete_ml_backend(backend.id)
    assert client.list_ml_backends(project) == []
    assert client.list_webhooks(project) == []


def test_views(client: LabelStudioClient, project: int) -> None:
    unlabelled = {
        "conjunction": "and",
        "items": [
            {
                "filter": "filter:tasks:total_annotations",
                "operator": "equal",
                "type": "Number",
                "value": 0,
            }
        ],
    }
    view = client.create_view(project, "To label", unlabelled)
    assert (view.project_id, view.title, view.filters) == (project, "To label", unlabelled)

    everything = {"conjunction": "and", "items": []}
    client.update_view(view.id, project, "Everything", everything)
    assert [(v.id, v.title, v.filters) for v in client.list_views(project)] == [
        (view.id, "Everything", everything)
    ]


def test_outage_and_recovery(label_studio: LabelStudioServer, project: int) -> None:
    with LabelStudioClient(label_studio.url, label_studio.token, retries=1, backoff=0.1) as client:
        label_studio.stop()
        try:
            with pytest.raises(LabelStudioUnreachable):
                client.health()
            with pytest.raises(LabelStudioUnreachable):
                client.get_project(project)
        finally:
            label_studio.start()
        client.health()
        assert client.get_project(project).id == project  # same data directory


def test_restart_notices_that_label_studio_moved_to_another_port(
    label_studio: LabelStudioServer,
) -> None:
    url = label_studio.url
    label_studio.stop()
    try:
        with socket.socket() as squatter:
            # The server's closed connections linger in TIME_WAIT on its port.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", label_studio.port))
            squatter.listen()
            with pytest.raises(LabelStudioStartError, match="moved to"):
                label_studio.start()
            assert not label_studio.running
    finally:
        label_studio.start()
    assert label_studio.url == url
