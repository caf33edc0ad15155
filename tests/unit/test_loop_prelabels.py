"""Which tasks still need a prelabel of the active version, candidates and the ML backend plan;
and the prelabel pass of `steps.prelabel` with the answer cache its caller owns."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import pytest

from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.models import Annotation, MLBackend, Prediction, Task
from labelloop.loop import active_learning, prelabels
from labelloop.loop.active_learning import Candidate
from labelloop.loop.prelabels import (
    BackendPlan,
    Ranked,
    backend_plan,
    backend_title,
    needing_prediction,
    predicted,
    rank_inputs,
    to_import,
)
from labelloop.steps.prelabel import AnswerCache, PrelabelOutcome, prelabel_pass

RESULT = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["P"]}}]
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
    '<Choice value="P"/><Choice value="N"/></Choices></View>'
)


def task(task_id: int, *versions: str, annotated: bool = False, skipped: bool = False) -> Task:
    """A task holding one prediction per version given, and maybe an annotation."""
    annotations = []
    if annotated or skipped:
        annotations.append(Annotation(task_id * 10, task_id, RESULT, 1, None, False, skipped))
    predictions = tuple(
        Prediction(task_id * 100 + i, task_id, RESULT, 0.5, v, None) for i, v in enumerate(versions)
    )
    return Task(task_id, {"text": "t"}, {}, None, tuple(annotations), predictions)


@pytest.mark.parametrize(
    ("tasks", "needing", "holding"),
    [
        ([], [], 0),
        ([task(2), task(1)], [1, 2], 0),  # by id
        ([task(1, "v1"), task(2, "v0"), task(3, "v0", "v1")], [2], 2),  # another version's: no
        ([task(1, annotated=True), task(2, "v1", annotated=True)], [], 0),  # labelled: never
        ([task(1, skipped=True)], [1], 0),  # a skipped task still waits for a label
    ],
)
def test_which_tasks_need_a_prediction_of_the_version(
    tasks: list[Task], needing: list[int], holding: int
) -> None:
    assert [t.id for t in needing_prediction(tasks, "v1")] == needing
    assert predicted(tasks, "v1") == holding


def answer(score: Any, version: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"result": RESULT, "score": score, "model_version": version, **extra}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({}, Ranked((), ())),
        (
            {2: answer(0.9, probabilities={"P": 0.9, "N": 0.1}), 1: answer(0.6)},
            Ranked((Candidate(1, 0.6), Candidate(2, 0.9, {"P": 0.9, "N": 0.1})), ()),
        ),
        # Another version (a canary's pod answered), no score, a score outside [0, 1], no result.
        (
            {1: answer(0.7, "v2"), 2: answer(None), 3: answer(1.5), 4: {"score": 0.5}},
            Ranked((), (1, 2, 3, 4)),
        ),
        (
            {1: answer(True), 2: answer(1)},  # a bool is no score; an int is
            Ranked((Candidate(2, 1.0),), (1,)),
        ),
        # A malformed distribution is dropped, the score still ranks the task.
        (
            {1: answer(0.5, probabilities={"P": "high"}), 2: answer(0.5, probabilities={})},
            Ranked((Candidate(1, 0.5), Candidate(2, 0.5)), ()),
        ),
    ],
)
def test_rank_inputs(answers: dict[int, dict[str, Any]], expected: Ranked) -> None:
    assert rank_inputs(answers, "v1") == expected


def test_to_import_keeps_the_chosen_order_and_only_label_studios_fields() -> None:
    answers = {1: answer(0.6, probabilities={"P": 0.6}), 2: answer(0.9)}
    assert to_import([2, 1], answers) == [
        {"task": 2, "result": RESULT, "score": 0.9, "model_version": "v1"},
        {"task": 1, "result": RESULT, "score": 0.6, "model_version": "v1"},
    ]


URL = "http://pl.ns.svc:9090"
TITLE = backend_title("pl")


def backend(backend_id: int, url: str = URL, title: str = TITLE, state: str = "CO") -> MLBackend:
    return MLBackend(backend_id, 1, url, title, state, "v1", False, None)


@pytest.mark.parametrize(
    ("backends", "url", "expected"),
    [
        ([], URL, BackendPlan(create=True)),
        ([backend(3)], URL, BackendPlan(keep=3)),
        ([backend(3, url=URL + "/")], URL, BackendPlan(keep=3)),  # a trailing slash is the same
        ([backend(3, "http://old.ns.svc:9090")], URL, BackendPlan(update=3)),  # moved
        ([backend(3, title=backend_title("old"))], URL, BackendPlan(update=3)),  # renamed
        ([backend(3, state="DI")], URL, BackendPlan(update=3)),  # checked again
        # Someone else's backend is left alone; of ours, one stays.
        ([backend(1, title="their model"), backend(2)], URL, BackendPlan(keep=2)),
        ([backend(4, "http://x.y:1"), backend(5)], URL, BackendPlan(keep=5, delete=(4,))),
        (
            [backend(4, "http://x.y:1"), backend(6, "http://z.y:1")],
            URL,
            BackendPlan(update=4, delete=(6,)),
        ),
        ([backend(1, title="their model"), backend(2)], None, BackendPlan(delete=(2,))),
    ],
)
def test_backend_plan(backends: list[MLBackend], url: str | None, expected: BackendPlan) -> None:
    assert backend_plan(backends, TITLE, url) == expected


# --- steps.prelabel: one pass, and the answers its caller remembers -----------------------


class _Server:
    """A prelabel server on a local port that answers every task and counts what it is
    asked."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.asked: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.asked += [t["id"] for t in body["tasks"]]
                results = [
                    {
                        "result": RESULT,
                        "score": 0.5 + t["id"] / 100,
                        "model_version": outer.version,
                        "probabilities": {"P": 0.5 + t["id"] / 100, "N": 0.5 - t["id"] / 100},
                    }
                    for t in body["tasks"]
                ]
                data = json.dumps({"results": results}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


class _LabelStudio:
    def __init__(self) -> None:
        self.imported: list[dict[str, Any]] = []

    def import_predictions(self, project_id: int, predictions: list[dict[str, Any]]) -> None:
        self.imported += predictions


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server("v2")
    yield running
    running.http.shutdown()


def one_pass(
    server: _Server,
    ls: _LabelStudio,
    tasks: list[Task],
    cache: AnswerCache,
    version: str = "v2",
    *,
    cold_start: bool = False,
) -> PrelabelOutcome:
    return prelabel_pass(
        cast(LabelStudioClient, ls),
        project_id=7,
        tasks=tasks,
        url=server.url,
        version=version,
        label_config=LABEL_CONFIG,
        strategy="uncertainty",
        batch_size=2,
        cache=cache,
        cache_id="project-uid",
        cold_start=cold_start,
    )


def test_before_a_fine_tuned_version_the_batch_is_a_random_sample(server: _Server) -> None:
    tasks = [task(i) for i in range(1, 21)]
    cold = one_pass(server, _LabelStudio(), tasks, AnswerCache(), cold_start=True)
    assert (
        cold.chosen
        == active_learning.rank(
            prelabels.rank_inputs(cold.answers, "v2").candidates, "random", seed=7
        )[:2]
    )
    assert cold.chosen != [1, 2]  # not the least certain


def test_each_pending_task_is_asked_once_across_passes(server: _Server) -> None:
    ls, cache = _LabelStudio(), AnswerCache()
    tasks = [task(i) for i in range(1, 6)]
    first = one_pass(server, ls, tasks, cache)
    # The least certain first (scores 0.51, 0.52, …), two per pass.
    assert first.chosen == [1, 2] and [p["task"] for p in ls.imported] == [1, 2]
    assert [p["score"] for p in ls.imported] == [0.51, 0.52]  # each task its own answer
    assert (first.pending, first.asked, first.predicted, first.remaining) == (5, 5, 2, 3)
    # Label Studio now holds their predictions; the others' answers were remembered.
    tasks = [task(1, "v2"), task(2, "v2"), task(3), task(4), task(5)]
    second = one_pass(server, ls, tasks, cache)
    assert second.chosen == [3, 4] and second.asked == 0
    assert server.asked == [1, 2, 3, 4, 5]


def test_the_cache_is_its_owners_and_a_new_version_is_asked_again(server: _Server) -> None:
    tasks = [task(1), task(2)]
    one_pass(server, _LabelStudio(), tasks, AnswerCache())
    one_pass(server, _LabelStudio(), tasks, AnswerCache())  # another owner: asked again
    assert server.asked == [1, 2, 1, 2]
    cache = AnswerCache()
    one_pass(server, _LabelStudio(), [task(1), task(2), task(3)], cache)
    server.version = "v3"
    later = one_pass(server, _LabelStudio(), [task(3)], cache, version="v3")
    assert later.asked == 1 and later.chosen == [3]


def test_a_new_versions_first_pass_measures_its_agreement_with_the_last(server: _Server) -> None:
    cache = AnswerCache()
    tasks = [task(i) for i in range(1, 6)]
    first = one_pass(server, _LabelStudio(), tasks, cache)
    assert first.agreement is None  # nothing served before
    server.version = "v3"
    # Tasks 1 and 2 hold v2's prelabels now; v2's answers to 3-5 are remembered.
    changed = one_pass(server, _LabelStudio(), [task(1, "v2"), task(2, "v2"), *tasks[2:]],
                       cache, version="v3")  # fmt: skip
    assert changed.agreement == 1.0  # both answer P everywhere
    again = one_pass(server, _LabelStudio(), tasks, cache, version="v3")
    assert again.agreement is None  # once per version change


def test_a_failing_server_is_an_outcome() -> None:
    outcome = prelabel_pass(
        cast(LabelStudioClient, _LabelStudio()),
        project_id=7,
        tasks=[task(1)],
        url="http://127.0.0.1:9",
        version="v2",
        label_config="<View/>",
        strategy="uncertainty",
        batch_size=2,
        cache=AnswerCache(),
        cache_id="project-uid",
    )
    assert outcome.server_error is not None and outcome.chosen == []
