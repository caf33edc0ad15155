"""The prelabel server over HTTP, serving tiny versions trained here by the trainer's `train`.

Servers run in-process on 127.0.0.1 (one thread each); one test runs the real command line
as a process, as the PrelabelService Deployment does.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from labelloop.api.labelconfig import Span, parse_label_config, read_result
from labelloop_trainer.cli import main
from labelloop_trainer.serving.app import BasicAuth, Limits
from labelloop_trainer.serving.server import build_server, serving
from labelloop_trainer.serving.version_scorer import VersionScorer
from trainer.support import fast_flags, toy_multi_label, toy_ner, toy_sentences, write_jsonl

pytestmark = pytest.mark.trainer

SENTIMENT = (
    '<View><Text name="review" value="$text"/>'
    '<Choices name="sentiment" toName="review" choice="single">'
    '<Choice value="pos"/><Choice value="neg"/><Choice value="neu"/></Choices></View>'
)
TOPICS = SENTIMENT.replace('choice="single"', 'choice="multiple"')
ENTITIES = (
    '<View><Text name="text" value="$text"/><Labels name="ner" toName="text">'
    '<Label value="NAME"/><Label value="CITY"/></Labels></View>'
)
SENTENCE_LEVEL = ["--target-modules", "query,key,value,dense", "--learning-rate", "0.01"]


def train_version(tmp: Path, tiny_model: Path, task: str, rows: list[Any], epochs: int) -> Path:
    """Train with the trainer's own CLI; the one version directory it wrote."""
    tmp.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(tmp / "data.jsonl", rows)
    args = ["train", "--data", str(data), "--task-type", task, "--epochs", str(epochs),
            "--model-version", f"toy-{task}", *fast_flags(tiny_model, tmp / "models")]  # fmt: skip
    if task != "ner":
        args += SENTENCE_LEVEL
    assert main(args) == 0
    return tmp / "models" / f"toy-{task}"


@pytest.fixture(scope="module")
def single_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return train_version(
        tmp_path_factory.mktemp("single"), tiny_model, "single-label", toy_sentences(40), 4
    )


@pytest.fixture(scope="module")
def single(single_dir: Path) -> VersionScorer:
    return VersionScorer.from_directory(single_dir, device="cpu")


@pytest.fixture(scope="module")
def url(single: VersionScorer) -> Iterator[str]:
    """A server with default limits, except at most 50 tasks per request."""
    with serving(build_server(single, limits=Limits(max_tasks=50))) as address:
        yield address


def tasks(texts: list[str], start: int = 1) -> list[dict[str, Any]]:
    """Tasks as Label Studio sends them: the whole task, the text under `data`."""
    return [
        {"id": start + i, "data": {"text": t}, "annotations": [], "predictions": [], "meta": {}}
        for i, t in enumerate(texts)
    ]


def predict_body(task_list: list[dict[str, Any]], config: str = SENTIMENT) -> dict[str, Any]:
    return {
        "tasks": task_list,
        "project": "1.1700000000",
        "label_config": config,
        "params": {"login": None, "password": None, "context": None},
    }


def predict(url: str, texts: list[str], config: str = SENTIMENT) -> list[dict[str, Any]]:
    response = httpx.post(f"{url}/predict", json=predict_body(tasks(texts), config), timeout=60)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert len(results) == len(texts)
    return results


def metric(url: str, name: str) -> float:
    """The value of one sample line of /metrics (labels included in `name`)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_predictions_follow_the_label_config(url: str) -> None:
    rows = toy_sentences(8, seed=7)
    results = predict(url, [r["text"] for r in rows])
    schema = parse_label_config(SENTIMENT)
    chosen = []
    for result in results:
        assert result["model_version"] == "toy-single-label"
        assert 1 / 3 <= result["score"] <= 1
        (region,) = result["result"]
        assert (region["from_name"], region["to_name"], region["type"]) == (
            "sentiment",
            "review",
            "choices",
        )
        (label,) = read_result(schema, result["result"])
        chosen.append(label)
    correct = sum(c == r["label"] for c, r in zip(chosen, rows, strict=True))
    assert correct >= 0.8 * len(rows), (chosen, rows)


def test_a_config_without_a_label_leaves_it_out(url: str) -> None:
    two = SENTIMENT.replace('<Choice value="neu"/>', "")
    for result in predict(url, ["the food was average typical ordinary"], two):
        assert read_result(parse_label_config(two), result["result"]) in (["pos"], ["neg"])


def test_batching_gives_the_same_predictions_as_one_by_one(single: VersionScorer) -> None:
    texts = [r["text"] for r in toy_sentences(10, seed=3)]
    one_by_one = build_server(single, limits=Limits(batch_size=1))
    batched = build_server(single, limits=Limits(batch_size=16, batch_wait_s=0.05))
    with serving(one_by_one) as plain, serving(batched) as fast:
        expected = predict(plain, texts)
        assert metric(plain, "labelloop_prelabel_batch_size_count") == len(texts)
        # A flood of single-task requests, as Label Studio sends them, from several threads.
        answers: dict[int, dict[str, Any]] = {}

        def ask(indices: range) -> None:
            with httpx.Client(base_url=fast, timeout=60) as client:
                for i in indices:
                    body = predict_body(tasks([texts[i]], start=i))
                    (answers[i],) = client.post("/predict", json=body).json()["results"]

        threads = [threading.Thread(target=ask, args=(range(k, len(texts), 6),)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        passes = metric(fast, "labelloop_prelabel_batch_size_count")
        assert passes < len(texts), "single-task requests were never batched"
        assert metric(fast, "labelloop_prelabel_batch_size_sum") == len(texts)
        together = predict(fast, texts)
    for i, want in enumerate(expected):
        for got in (answers[i], together[i]):
            assert got["result"][0]["value"] == want["result"][0]["value"]
            assert got["score"] == pytest.approx(want["score"], abs=1e-5)


CASES = [
    ("not json", b"{tasks:", 400, "body"),
    ("not an object", b"[1, 2]", 400, "body"),
    ("unknown field", {"tasks": [], "label_config": SENTIMENT, "extra": 1}, 400, "extra"),
    ("no tasks", {"label_config": SENTIMENT}, 400, "tasks"),
    ("tasks not a list", {"tasks": {"id": 1}, "label_config": SENTIMENT}, 400, "tasks"),
    ("task not an object", predict_body(["hello"]), 400, "tasks[0]"),  # type: ignore[list-item]
    ("task without data", predict_body([{"id": 1}]), 422, "tasks[0].data"),
    (
        "missing text field",
        predict_body([*tasks(["fine"]), {"id": 2, "data": {"body": "x"}}]),
        422,
        "tasks[1].data.text",
    ),
    (
        "text not a string",
        predict_body([{"id": 1, "data": {"text": 3}}]),
        422,
        "tasks[0].data.text",
    ),
    ("oversized batch", predict_body(tasks(["great"] * 51)), 413, "tasks"),
    ("bad config", predict_body(tasks(["x"]), "<View><Text"), 422, "label_config"),
    ("config not a string", predict_body(tasks(["x"]), 3), 400, "label_config"),  # type: ignore[arg-type]
    ("config of another task type", predict_body(tasks(["x"]), ENTITIES), 422, "label_config"),
    ("no label config", {"tasks": tasks(["x"]), "project": "99.1"}, 422, "label_config"),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_predict_requests_get_a_4xx_naming_the_field(
    url: str, body: Any, status: int, field: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{url}/predict", content=content)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert response.json()["error"]


def test_bad_http_gets_a_4xx_and_the_server_keeps_serving(url: str) -> None:
    assert httpx.get(f"{url}/nowhere").status_code == 404
    assert httpx.get(f"{url}/predict").status_code == 405
    # Refused from the headers alone: the body is never read, nor even sent here.
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Length", str(1 << 40))
    connection.endheaders()
    huge = connection.getresponse()
    assert (huge.status, json.loads(huge.read())["field"]) == (413, "body")
    connection.close()

    def chunks() -> Iterator[bytes]:
        yield b'{"tasks": [{"data": '
        yield b'{"text": "great"}}], "label_config": ' + json.dumps(SENTIMENT).encode() + b"}"

    # A chunked body (no Content-Length) is read, up to the same limit.
    streamed = httpx.post(f"{url}/predict", content=chunks())
    assert streamed.status_code == 200 and len(streamed.json()["results"]) == 1
    assert httpx.get(f"{url}/health").json()["status"] == "UP"


def test_setup_health_and_webhook(url: str) -> None:
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "UP" and health["model_version"] == "toy-single-label"
    setup = {"project": "7.1700000000", "schema": SENTIMENT, "hostname": "http://ls:8080",
             "access_token": "t0k3n", "extra_params": None}  # fmt: skip
    assert httpx.post(f"{url}/setup", json=setup).json() == {"model_version": "toy-single-label"}
    # The project's config from /setup serves its predict calls that carry none.
    body = {"tasks": tasks(["great superb lovely"]), "project": "7.1700000000"}
    (result,) = httpx.post(f"{url}/predict", json=body).json()["results"]
    assert result["result"][0]["value"] == {"choices": ["pos"]}
    bad_setup = httpx.post(f"{url}/setup", json={**setup, "schema": ENTITIES})
    assert (bad_setup.status_code, bad_setup.json()["field"]) == (422, "schema")
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}, "project": {"id": 7}}
    assert httpx.post(f"{url}/webhook", json=event).status_code == 200
    assert metric(url, 'labelloop_prelabel_webhook_events_total{action="ANNOTATION_CREATED"}') >= 1


def test_metrics(url: str) -> None:
    before = metric(url, "labelloop_prelabel_predictions_total")
    predict(url, ["great", "awful", "average"])
    assert metric(url, "labelloop_prelabel_predictions_total") == before + 3
    assert metric(url, 'labelloop_prelabel_requests_total{code="200",path="/predict"}') >= 1
    assert metric(url, 'labelloop_prelabel_request_seconds_count{path="/predict"}') >= 1
    assert metric(url, "labelloop_prelabel_batch_size_count") >= 1
    info = (
        'labelloop_prelabel_model_info{model_version="toy-single-label",task_type="single-label"}'
    )
    assert metric(url, info) == 1


def test_basic_auth(single: VersionScorer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = BasicAuth("label-studio", "s3cret-pass")
    with serving(build_server(single, auth=auth)) as address:
        body = predict_body(tasks(["great"]))
        refused = httpx.post(f"{address}/predict", json=body)
        assert refused.status_code == 401 and "Basic" in refused.headers["WWW-Authenticate"]
        wrong = httpx.post(f"{address}/predict", json=body, auth=("label-studio", "guess"))
        assert wrong.status_code == 401
        garbled = httpx.post(f"{address}/predict", json=body, headers={"Authorization": "Basic !"})
        assert garbled.status_code == 401
        assert httpx.post(f"{address}/predict", json=body, auth=auth_pair(auth)).status_code == 200
        setup = {"project": "1.1", "schema": SENTIMENT, "access_token": "ls-owner-token"}
        assert httpx.post(f"{address}/setup", json=setup, auth=auth_pair(auth)).status_code == 200
        # Probes and scrapes carry no credentials.
        assert httpx.get(f"{address}/health").status_code == 200
        assert httpx.get(f"{address}/metrics").status_code == 200
    for secret in (
        "s3cret-pass",
        "ls-owner-token",
        base64.b64encode(b"label-studio:s3cret-pass").decode(),
    ):
        assert secret not in caplog.text


def auth_pair(auth: BasicAuth) -> tuple[str, str]:
    return (auth.user, auth.password)


def test_multi_label_and_ner(tmp_path: Path, tiny_model: Path) -> None:
    multi = VersionScorer.from_directory(
        train_version(tmp_path / "m", tiny_model, "multi-label", toy_multi_label(60), 1)
    )
    rows = toy_ner(80)
    ner = VersionScorer.from_directory(train_version(tmp_path / "n", tiny_model, "ner", rows, 4))
    with serving(build_server(multi)) as m, serving(build_server(ner)) as n:
        for result in predict(
            m, ["great lovely superb and awful rotten dreadful", "the room"], TOPICS
        ):
            assert 0.5 <= result["score"] <= 1
            assert set(read_result(parse_label_config(TOPICS), result["result"])) <= {
                "pos",
                "neg",
                "neu",
            }
        texts = [r["text"] for r in rows[:6]]
        schema = parse_label_config(ENTITIES)
        found = 0
        for text, row, result in zip(texts, rows[:6], predict(n, texts, ENTITIES), strict=True):
            assert 0 <= result["score"] <= 1
            spans = read_result(schema, result["result"])
            assert all(isinstance(s, Span) and text[s.start : s.end] == s.text for s in spans)
            gold = {(s["start"], s["end"], s["label"]) for s in row["spans"]}
            found += len(gold & {(s.start, s.end, s.label) for s in spans if isinstance(s, Span)})
        assert found >= 0.8 * 2 * len(texts)


def test_the_command_line_serves_until_sigterm(single_dir: Path) -> None:
    version = single_dir.name
    process = subprocess.Popen(
        [sys.executable, "-m", "labelloop_trainer", "serve", f"--model={single_dir}",
         "--port=0", "--host=127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), process.stderr
        address = line.split()[-1]
        assert httpx.get(f"{address}/health").json()["model_version"] == version
        assert predict(address, ["great lovely superb"])[0]["model_version"] == version
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_bad_flags_exit_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", f"--model={tmp_path}", "--port=0"]) == 2
    assert "is not a model version" in capsys.readouterr().err
    assert main(["serve", "--zero-shot", "--port=0"]) == 2
    assert "--zero-shot needs --base-model" in capsys.readouterr().err
    assert main(["serve", f"--model={tmp_path}", "--batch-size=0"]) == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err


def test_versions_lists_the_served_version(url: str) -> None:
    assert httpx.get(f"{url}/versions").json() == {"versions": ["toy-single-label"]}


def test_thousands_of_tasks_in_one_request_are_answered_completely_and_in_order(
    single: VersionScorer,
) -> None:
    """Label Studio's "Retrieve predictions" sends every selected task in one request."""
    distinct = [r["text"] for r in toy_sentences(20, seed=11)]
    texts = [distinct[(i * 7) % len(distinct)] for i in range(3000)]
    with serving(build_server(single, limits=Limits(batch_size=64))) as address:
        alone = {t: r for t, r in zip(distinct, predict(address, distinct), strict=True)}
        passes_before = metric(address, "labelloop_prelabel_batch_size_count")
        results = predict(address, texts)
        passes = metric(address, "labelloop_prelabel_batch_size_count") - passes_before
    assert passes == len(texts) / 64 or passes == len(texts) // 64 + 1
    for text, result in zip(texts, results, strict=True):
        assert result["result"][0]["value"] == alone[text]["result"][0]["value"]
        assert result["score"] == pytest.approx(alone[text]["score"], abs=1e-5)


def test_hundreds_of_concurrent_connections_are_all_answered(url: str) -> None:
    """More clients at once than the standard library's listen backlog of 5 ever queued."""

    async def flood() -> list[int]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
            body = predict_body(tasks(["great lovely superb"]))
            answers = await asyncio.gather(
                *(client.post("/predict", json=body) for _ in range(300))
            )
        return [a.status_code for a in answers]

    assert asyncio.run(flood()) == [200] * 300
