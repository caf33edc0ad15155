"""The project steps (`labelloop.steps`) against the real Label Studio server of the fixture.

The steps are called directly (no control plane): project creation and updates, idempotent
imports from every source format, counts, the webhook with its secret header, and annotator
scores from annotations made by real Label Studio users.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fixtures.labelstudio import LabelStudioServer
from fixtures.operator import eventually
from labelloop.api.annotationproject import AnnotationProjectSpec, DataSource, Routing
from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.errors import LabelConfigRejected
from labelloop.loop.annotators import score_annotators, votes_of_tasks
from labelloop.loop.consistency import disagreements, review_filter
from labelloop.loop.counting import tally
from labelloop.loop.relabel import queue_filter, relabel_queue
from labelloop.loop.routing import RELABEL_VIEW, REVIEW_VIEW, ViewSpec, tier_views
from labelloop.steps.project import (
    DataSourceUnavailable,
    ensure_project,
    import_tasks,
    parse_source,
)
from labelloop.steps.review import ensure_views
from labelloop.steps.webhook import SECRET_HEADER, ensure_webhook

pytestmark = pytest.mark.labelstudio

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>'
    "</Choices></View>"
)
SCHEMA = parse_label_config(CONFIG)
NO_CONFIG_MAPS: Mapping[str, Mapping[str, str]] = {}


def spec(title: str = "", label_config: str = CONFIG, **data: Any) -> AnnotationProjectSpec:
    return AnnotationProjectSpec.model_validate(
        {
            "labelStudio": {"external": {"url": "http://ls.example.com"}},
            "credentialsSecretRef": {"name": "token"},
            "project": {
                "title": title or f"sync {secrets.token_hex(3)}",
                "description": "synced by the tests",
                "labelConfig": label_config,
            },
            **({"data": data} if data else {}),
        }
    )


@pytest.fixture
def ls(label_studio: LabelStudioServer) -> Iterator[LabelStudioClient]:
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        yield client


@dataclass
class Files:
    """A static file server on 127.0.0.1 that also records request headers (for webhooks)."""

    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (type, text)
    posts: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def files() -> Iterator[Files]:
    served = Files()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = served.files.get(self.path)
            if found is None:
                self.send_response(404)
                self.end_headers()
                return
            data = found[1].encode()
            self.send_response(200)
            self.send_header("Content-Type", found[0])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            served.posts.append((self.path, dict(self.headers)))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the assertions say what was received."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield served
    server.shutdown()
    server.server_close()


def test_project_is_created_once_then_kept_in_sync(ls: LabelStudioClient) -> None:
    recorded: list[int] = []
    wanted = spec()
    project_id = ensure_project(ls, wanted, None, recorded.append)
    assert recorded == [project_id]
    project = ls.get_project(project_id)
    assert (project.title, project.description, project.label_config) == (
        wanted.project.title,
        "synced by the tests",
        CONFIG,
    )

    # Known id: nothing is created again, changed fields are written.
    more = CONFIG.replace(
        '<Choice value="Neutral"/>', '<Choice value="Neutral"/><Choice value="Mixed"/>'
    )
    changed = spec(title="renamed project", label_config=more)
    assert ensure_project(ls, changed, project_id, recorded.append) == project_id
    assert recorded == [project_id]
    project = ls.get_project(project_id)
    assert (project.title, project.label_config) == ("renamed project", more)


def test_rejected_label_config_carries_label_studios_words(ls: LabelStudioClient) -> None:
    broken = (
        '<View><Text name="text" value="$text"/><Choices name="label" toName="nowhere">'
        '<Choice value="A"/></Choices></View>'
    )
    with pytest.raises(LabelConfigRejected) as rejected:
        ensure_project(ls, spec(label_config=broken), None, lambda _: None)
    assert "nowhere" in rejected.value.detail

    # A config that would orphan existing annotations is refused for that project.
    project_id = ensure_project(ls, spec(), None, lambda _: None)
    ls.import_tasks(project_id, [{"text": "Great food"}])
    (task,) = ls.iter_tasks(project_id)
    ls.create_annotation(task.id, build_result(SCHEMA, ["Neutral"]))
    without_neutral = CONFIG.replace('<Choice value="Neutral"/>', "")
    with pytest.raises(LabelConfigRejected) as refused:
        ensure_project(ls, spec(label_config=without_neutral), project_id, lambda _: None)
    assert refused.value.detail


JSON_ROWS = [{"text": "Great food"}, {"text": "Slow service"}, {"title": "no text"}]
SOURCES = {
    "/tasks.json": ("application/json", json.dumps(JSON_ROWS)),
    "/tasks.jsonl": (
        "application/octet-stream",
        '{"text": "Great food"}\n{"text": "Slow service"}\n{not json\n',
    ),
    "/tasks.csv": ("text/csv", "text,source\nGreat food,web\nSlow service,app\nbroken,row,x\n"),
    "/download": ("application/x-ndjson", '{"text": "Great food"}\n{"text": "Slow service"}\n[]\n'),
}


@pytest.mark.parametrize("path", sorted(SOURCES))
def test_url_imports_are_idempotent_and_count_malformed_rows(
    ls: LabelStudioClient, files: Files, path: str
) -> None:
    files.files.update(SOURCES)
    source = DataSource(url=files.url + path)
    project_id = ensure_project(ls, spec(), None, lambda _: None)
    for expected_sent in (2, 0):  # the second run finds both tasks by their keys
        present = tally(ls.iter_tasks(project_id), SCHEMA, 0).keys
        parsed = parse_source(source, SCHEMA, NO_CONFIG_MAPS.get)
        assert (len(parsed.rows), parsed.malformed) == (2, 1)
        assert import_tasks(ls, project_id, parsed, present) == expected_sent
    tasks = list(ls.iter_tasks(project_id))
    assert sorted(t.data["text"] for t in tasks) == ["Great food", "Slow service"]
    assert len(tally(tasks, SCHEMA, 0).keys) == 2


def test_inline_and_config_map_sources(ls: LabelStudioClient) -> None:
    project_id = ensure_project(ls, spec(), None, lambda _: None)
    config_maps = {"tasks": {"reviews.jsonl": '{"text": "Cold fries"}\n{"text": "Nice staff"}\n'}}
    sources = [
        DataSource(inline=[{"text": "Cold fries"}, {"text": "Lovely"}, {"label": "no text"}]),
        DataSource.model_validate({"configMapRef": {"name": "tasks", "key": "reviews.jsonl"}}),
    ]
    for _ in range(2):
        for source in sources:
            present = tally(ls.iter_tasks(project_id), SCHEMA, 0).keys
            import_tasks(ls, project_id, parse_source(source, SCHEMA, config_maps.get), present)
    texts = sorted(t.data["text"] for t in ls.iter_tasks(project_id))
    assert texts == ["Cold fries", "Lovely", "Nice staff"]
    assert parse_source(sources[0], SCHEMA, config_maps.get).malformed == 1

    missing = DataSource.model_validate({"configMapRef": {"name": "absent", "key": "x.csv"}})
    with pytest.raises(DataSourceUnavailable, match="ConfigMap absent not found"):
        parse_source(missing, SCHEMA, config_maps.get)


def test_webhook_is_registered_once_with_the_secret_and_delivers_it(
    ls: LabelStudioClient, files: Files
) -> None:
    project_id = ensure_project(ls, spec(), None, lambda _: None)
    path = "/webhook/team/reviews"
    moved = f"http://127.0.0.1:9{path}"  # where an earlier operator's receiver was
    ls.create_webhook(project_id, moved, headers={SECRET_HEADER: "old"})
    someone_elses = ls.create_webhook(project_id, f"{files.url}/elsewhere")
    url = files.url + path
    for secret in ("first-secret", "first-secret", "rotated-secret"):
        ensure_webhook(ls, project_id, path, (url, secret))
        hooks = {h.url: h for h in ls.list_webhooks(project_id)}
        assert sorted(hooks) == sorted([url, someone_elses.url])
        assert hooks[url].headers == {SECRET_HEADER: secret}
    ls.import_tasks(project_id, [{"text": "Great food"}])
    (task,) = ls.iter_tasks(project_id)
    ls.create_annotation(task.id, build_result(SCHEMA, ["Positive"]))

    def delivered() -> list[tuple[str, dict[str, str]]] | None:
        return [p for p in files.posts if p[0] == path] or None

    (_, headers), *_ = eventually(delivered, "the webhook", timeout=15)
    assert headers.get(SECRET_HEADER) == "rotated-secret"

    # An operator without a receiver removes its webhook, and only its own.
    ensure_webhook(ls, project_id, path, None)
    assert [h.url for h in ls.list_webhooks(project_id)] == [someone_elses.url]


def test_counts_and_annotator_scores_come_from_real_users(
    ls: LabelStudioClient, label_studio: LabelStudioServer
) -> None:
    suffix = secrets.token_hex(3)
    users = {who: label_studio.create_user(f"{who}-{suffix}") for who in ("ann", "bob", "cy")}
    project_id = ensure_project(ls, spec(), None, lambda _: None)
    texts = [f"review {i}" for i in range(4)]
    ls.import_tasks(
        project_id, [{"text": t} for t in texts] + [{"text": "gold", "gold": "Negative"}]
    )
    tasks = sorted(ls.iter_tasks(project_id), key=lambda t: t.id)
    # ann and bob agree everywhere; cy dissents on the first review and misses the gold task.
    answers = {
        "ann": ["Positive"] * 4 + ["Negative"],
        "bob": ["Positive"] * 4 + ["Negative"],
        "cy": ["Neutral"] + ["Positive"] * 3 + ["Positive"],
    }
    for who, labels in answers.items():
        for task, label in zip(tasks, labels, strict=True):
            ls.create_annotation(task.id, build_result(SCHEMA, [label]), completed_by=users[who])

    tasks = list(ls.iter_tasks(project_id))
    counted = tally(tasks, SCHEMA, cutoff=0)
    project = ls.get_project(project_id)
    assert (counted.tasks, counted.annotated_tasks, counted.annotations) == (5, 5, 15)
    assert (project.task_count, project.tasks_with_annotations) == (5, 5)
    assert counted.label_distribution == {"Positive": 12, "Negative": 2, "Neutral": 1}

    scores = {s.annotator: s for s in score_annotators(votes_of_tasks(tasks, SCHEMA), Routing())}
    by_name = {who: scores[str(uid)] for who, uid in users.items()}
    assert (by_name["ann"].accuracy, by_name["ann"].tier) == (1.0, "expert")
    # cy: outvoted on review 0, wrong on gold: 3 of 5.
    assert (by_name["cy"].compared, by_name["cy"].accuracy, by_name["cy"].tier) == (5, 0.6, "basic")


def view_task_ids(label_studio: LabelStudioServer, project_id: int, view_id: int) -> list[int]:
    """The tasks a Data Manager tab shows, as Label Studio itself filters them."""
    response = httpx.get(
        f"{label_studio.url}/api/tasks",
        params={"project": project_id, "view": view_id, "page_size": 100},
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=10,
    )
    response.raise_for_status()
    return sorted(t["id"] for t in response.json()["tasks"])


def test_disagreements_with_confident_prelabels_and_tier_views(
    ls: LabelStudioClient, label_studio: LabelStudioServer
) -> None:
    project_id = ensure_project(ls, spec(), None, lambda _: None)
    ls.import_tasks(project_id, [{"text": f"review {i}"} for i in range(5)])
    agree, disagree, unsure, hard, easy = sorted(t.id for t in ls.iter_tasks(project_id))
    for task_id, label, score in [
        (agree, "Positive", 0.95),
        (disagree, "Negative", 0.95),
        (unsure, "Neutral", 0.3),
        (hard, "Neutral", 0.3),
        (easy, "Positive", 0.9),
    ]:
        ls.create_prediction(task_id, build_result(SCHEMA, [label]), score, "v1")
    for task_id in (agree, disagree, unsure):
        ls.create_annotation(task_id, build_result(SCHEMA, ["Positive"]))
    # Label Studio scores tasks by the predictions of the project's current model version
    # (set when a PrelabelService's version is connected; here by hand, a test-only call).
    httpx.patch(
        f"{label_studio.url}/api/projects/{project_id}",
        json={"model_version": "v1"},
        headers={"Authorization": f"Token {label_studio.token}"},
        timeout=10,
    ).raise_for_status()

    found = disagreements(ls.iter_tasks(project_id), SCHEMA, min_score=0.9)
    assert [(d.task_id, d.labels, d.prelabel, d.score) for d in found] == [
        (disagree, ("Positive",), ("Negative",), 0.95)
    ]

    suspects = relabel_queue(list(ls.iter_tasks(project_id)), SCHEMA, min_score=0.9)
    wanted = [
        *tier_views(),
        ViewSpec(REVIEW_VIEW, review_filter(found)),
        ViewSpec(RELABEL_VIEW, queue_filter(suspects)),
    ]
    ensure_views(ls, project_id, wanted)
    views = {v.title: v for v in ls.list_views(project_id)}
    ensure_views(ls, project_id, wanted)  # a second pass changes nothing
    assert {v.title: v for v in ls.list_views(project_id)} == views
    shown = {title: view_task_ids(label_studio, project_id, v.id) for title, v in views.items()}
    assert shown == {
        REVIEW_VIEW: [disagree],
        RELABEL_VIEW: [disagree],  # experts relabel what a confident prelabel contradicts
        "labelloop: expert tasks": [hard],
        "labelloop: standard tasks": [],
        "labelloop: basic tasks": [easy],
    }
