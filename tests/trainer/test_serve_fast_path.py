"""The CPU fast path (ONNX Runtime) against PyTorch, on a tiny version trained here."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from labelloop.api.labelconfig import parse_label_config
from labelloop_trainer.serving.chain import ClassScores, TextInput
from labelloop_trainer.serving.fast_path import length_grouped, torch_forward
from labelloop_trainer.serving.version_scorer import VersionScorer
from labelloop_trainer.training.output import load_version
from trainer.support import toy_sentences
from trainer.test_serve import SENTIMENT, train_version

pytestmark = pytest.mark.trainer


@pytest.fixture(scope="module")
def version_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return train_version(
        tmp_path_factory.mktemp("fast"), tiny_model, "single-label", toy_sentences(30), 8
    )


def items(count: int) -> list[TextInput]:
    schema = parse_label_config(SENTIMENT)
    return [TextInput(r["text"], schema) for r in toy_sentences(count, seed=5)]


def probabilities(scorer: VersionScorer, batch: list[TextInput]) -> list[dict[str, float]]:
    scores = scorer.score(batch)
    assert all(isinstance(s, ClassScores) for s in scores)
    return [dict(s.probabilities) for s in scores if isinstance(s, ClassScores)]


def test_onnx_runtime_predicts_what_pytorch_predicts(version_dir: Path) -> None:
    plain = VersionScorer.from_directory(version_dir, device="cpu", runtime="torch")
    fast = VersionScorer.from_directory(version_dir, device="cpu", runtime="onnx")
    auto = VersionScorer.from_directory(version_dir, device="cpu", runtime="auto")
    assert (plain.runtime, fast.runtime, auto.runtime) == ("torch", "onnx", "onnx")
    batch = items(8)
    for want, got in zip(probabilities(plain, batch), probabilities(fast, batch), strict=True):
        assert want.keys() == got.keys()
        for label, p in want.items():
            assert got[label] == pytest.approx(p, abs=1e-4)


def test_int8_keeps_the_labels_the_model_is_sure_of(version_dir: Path) -> None:
    """Quantisation moves probabilities by about a hundredth: a label chosen by a margin of
    a tenth stays (a near tie may flip, as it would between two equally good models)."""
    plain = VersionScorer.from_directory(version_dir, device="cpu", runtime="torch")
    int8 = VersionScorer.from_directory(version_dir, device="cpu", runtime="onnx-int8")
    assert int8.runtime == "onnx-int8"
    batch = items(10)
    sure = {i: chosen(p) for i, p in enumerate(probabilities(plain, batch)) if margin(p) >= 0.1}
    assert len(sure) >= 5
    quantised = probabilities(int8, batch)
    assert {i: chosen(quantised[i]) for i in sure} == sure


def chosen(probabilities: Mapping[str, float]) -> str:
    return max(probabilities, key=probabilities.__getitem__)


def margin(probabilities: Mapping[str, float]) -> float:
    top, second = sorted(probabilities.values(), reverse=True)[:2]
    return top - second


def test_the_export_leaves_the_pytorch_model_as_it_was(version_dir: Path) -> None:
    loaded = load_version(version_dir, None, "cpu")
    forward = torch_forward(loaded.model, "logits")
    inputs = dict(loaded.tokenizer(["great food", "awful rotten room here"], padding=True,
                                   return_tensors="pt"))  # fmt: skip
    before = forward(inputs)
    assert VersionScorer(loaded, "v", runtime="onnx").runtime == "onnx"
    assert torch.equal(forward(inputs), before)


def test_without_onnxruntime_it_serves_with_pytorch(
    version_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    caplog.set_level(logging.WARNING)
    scorer = VersionScorer.from_directory(version_dir, device="cpu", runtime="auto")
    assert scorer.runtime == "torch"
    assert "onnxruntime is not installed" in caplog.text
    batch = items(2)
    assert len(scorer.score(batch)) == len(batch)


def test_an_unknown_runtime_is_refused(version_dir: Path) -> None:
    with pytest.raises(ValueError, match="runtime must be one of"):
        VersionScorer.from_directory(version_dir, device="cpu", runtime="tensorrt")


def test_a_cpu_batch_runs_in_groups_of_similar_length_with_the_same_outputs(
    version_dir: Path,
) -> None:
    loaded = load_version(version_dir, None, "cpu")
    texts = ["great", "awful rotten room here and the food", "ok", "the staff was quite lovely"]
    inputs = dict(loaded.tokenizer(texts, padding=True, return_tensors="pt"))
    widths: list[tuple[int, int]] = []
    plain = torch_forward(loaded.model, "logits")

    def recording(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        widths.append(tuple(batch["input_ids"].shape))  # type: ignore[arg-type]
        return plain(batch)

    together = length_grouped(recording, pass_cost=0)(inputs)  # free passes: one a length
    assert len(widths) > 1 and all(w[1] < inputs["input_ids"].shape[1] for w in widths[:-1])
    assert sum(w[0] for w in widths) == len(texts)
    assert torch.allclose(together, plain(inputs), atol=1e-5)
