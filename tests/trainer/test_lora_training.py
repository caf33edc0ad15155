"""Training each task type on a tiny model, early stopping, versions and bad input (in-process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from labelloop_trainer.cli import main
from labelloop_trainer.training.output import load_version
from trainer.support import (
    fast_flags,
    run_module,
    toy_multi_label,
    toy_ner,
    toy_sentences,
    write_jsonl,
)

pytestmark = pytest.mark.trainer

VERSION_FILES = {
    "adapter", "tokenizer", "label_map.json", "metrics.json", "dataset.json", "config.json",
    "base_model.json",
}  # fmt: skip


def train(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, Path | None, str]:
    """Run `train` in-process: exit code, the version directory printed, and stderr."""
    code = main(["train", *args])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return code, Path(lines[-1]) if code == 0 else None, captured.err


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# Sentence-level targets are harder than token-level ones for a random tiny backbone: adapt
# every linear layer, and keep the epoch with the best F1.
SENTENCE_LEVEL = ["--epochs", "4", "--target-modules", "query,key,value,dense",
                  "--learning-rate", "0.01", "--monitor", "f1"]  # fmt: skip
TASKS: dict[str, tuple[Any, list[str], str, float]] = {
    "single-label": (lambda: toy_sentences(40), SENTENCE_LEVEL, "accuracy", 0.9),
    "multi-label": (lambda: toy_multi_label(200), SENTENCE_LEVEL, "macro_f1", 0.5),
    "ner": (lambda: toy_ner(80), ["--epochs", "4"], "macro_f1", 0.9),
}


@pytest.mark.parametrize("task", TASKS)
def test_each_task_type_learns_a_separable_toy_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model: Path, task: str
) -> None:
    rows, extra, metric, minimum = TASKS[task]
    data = write_jsonl(tmp_path / "toy.jsonl", rows())
    code, version, _ = train(
        capsys,
        ["--data", str(data), "--task-type", task, *fast_flags(tiny_model, tmp_path / "models"),
         *extra],
    )  # fmt: skip
    assert code == 0
    assert version is not None
    assert {p.name for p in version.iterdir()} == VERSION_FILES
    result = read(version / "metrics.json")
    assert result["metrics"][metric] >= minimum, result["history"]
    assert 0 <= result["metrics"]["macro_f1"] <= 1
    assert result["epochsRun"] == int(extra[1])
    assert result["promotion"] == {"passed": True, "reason": "no promotion gate"}
    label_map = read(version / "label_map.json")
    assert label_map["taskType"] == task
    manifest = read(version / "dataset.json")
    assert manifest["count"] == manifest["trainCount"] + manifest["evalCount"]
    assert manifest["hash"].startswith("sha256:")
    assert not (tmp_path / "models" / ".checkpoints").exists()

    loaded = load_version(version)
    encoded = loaded.tokenizer(["the food was great"], return_tensors="pt")
    with torch.inference_mode():
        logits = loaded.model(**encoded).logits
    assert logits.shape[-1] == len(label_map["outputNames"])


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [
        # (epochs run, epoch kept, stopped early). A loss has no known noise: a loss that
        # does not fall is not kept, and the run stops after the patience.
        ("eval_loss", (3, 1, True)),
        # An accuracy that stays put is within its noise on the held-out examples every
        # epoch: the run trains all its epochs and keeps the first (none beat it).
        ("accuracy", (6, 1, False)),
    ],
)
def test_early_stopping_when_the_metric_stalls(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_model: Path,
    monitor: str,
    expected: tuple[int, int, bool],
) -> None:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(20))
    flags = fast_flags(tiny_model, tmp_path / "models")
    flags[flags.index("--learning-rate") + 1] = "1e-12"  # nothing changes: the metric stalls
    code, version, err = train(
        capsys,
        ["--data", str(data), "--epochs", "6", "--patience", "2", "--monitor", monitor,
         *flags],
    )  # fmt: skip
    assert code == 0
    assert version is not None
    result = read(version / "metrics.json")
    assert (result["epochsRun"], result["bestEpoch"], result["earlyStopped"]) == expected
    epochs_run = expected[0]
    assert [h["epoch"] for h in result["history"]] == list(range(1, epochs_run + 1))
    assert err.count('"event": "epoch"') == epochs_run


def test_an_existing_version_is_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model: Path
) -> None:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(10))
    args = ["--data", str(data), "--epochs", "1", "--model-version", "v1",
            *fast_flags(tiny_model, tmp_path / "models")]  # fmt: skip
    code, version, _ = train(capsys, args)
    assert code == 0
    assert version is not None
    before = {p.name: p.stat().st_mtime_ns for p in version.rglob("*")}
    code, _, err = train(capsys, [*args, "--learning-rate", "0.5"])
    assert code == 3
    assert "v1 already exists" in err
    assert {p.name: p.stat().st_mtime_ns for p in version.rglob("*")} == before


BAD_INPUT: dict[str, tuple[str, list[str], str]] = {
    "empty file": ("", [], "is empty"),
    "wrong text field": ('{"sentence": "a", "label": "pos"}\n', [], "no row has the text field"),
    "unknown labels": (
        '{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\n',
        ["--labels", "positive,negative"],
        "only positive, negative are allowed",
    ),
    "bad batch size": ('{"text": "a", "label": "pos"}\n', ["--batch-size", "0"], "batchSize"),
    "unknown metric": (
        '{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\n',
        ["--metric", "bleu"],
        "'bleu' is not a metric",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model: Path, case: str
) -> None:
    content, extra, phrase = BAD_INPUT[case]
    data = tmp_path / "rows.jsonl"
    data.write_text(content, encoding="utf-8")
    code, _, err = train(
        capsys, ["--data", str(data), *fast_flags(tiny_model, tmp_path / "models"), *extra]
    )
    assert code == 2
    assert phrase in err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_the_process_exit_code_is_2_for_bad_data(tmp_path: Path, tiny_model: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("sentence,gold\na,x\n", encoding="utf-8")
    done = run_module(
        ["train", "--data", str(data), "--base-model", str(tiny_model), "--output",
         str(tmp_path / "models")]
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no row has the text field 'text'; the rows have the fields: gold, sentence" in (
        done.stderr
    )


def test_job_file_form_writes_the_result_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tiny_model: Path,
) -> None:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(20))
    # The serving version: one epoch at a tiny learning rate, a real version all the same.
    code, previous, _ = train(
        capsys,
        ["--data", str(data), "--model-version", "serving", "--epochs", "1",
         *fast_flags(tiny_model, tmp_path / "models"), "--learning-rate", "1e-6"],
    )  # fmt: skip
    assert code == 0 and previous is not None
    job = {
        "name": "reviews-r3", "namespace": "ml", "uid": "1234",
        "modelVersion": "reviews-r3-1a2b3c4d",
        "dataset": {"path": str(data), "textField": "text", "labelField": "label"},
        "outputDir": str(tmp_path / "models"),
        "baseModelDir": str(tiny_model),
        "previousVersionDir": str(previous),
        "spec": {
            "baseModel": {"uri": "pvc://models/base"},
            "output": {"uri": "pvc://models/reviews"},
            "dataset": {"uri": "pvc://data/toy.jsonl"},
            "method": {"type": "lora", "lora": {"r": 8, "alpha": 16, "dropout": 0.0}},
            "hyperparameters": {
                "learningRate": 0.02, "lrScheduler": "linear", "epochs": 2, "batchSize": 8,
                "warmupRatio": 0.0, "earlyStopping": {"patience": 3, "metric": "eval_loss"},
                "maxSequenceLength": 32, "seed": 3, "evalSplit": 0.2,
            },
            "evaluation": {
                "metrics": ["accuracy", "f1"],
                "promotion": {"metric": "f1", "minimum": 0.0, "mustImprove": True},
            },
        },
    }  # fmt: skip
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    result_file = tmp_path / "termination-log"
    monkeypatch.setenv("LABELLOOP_RESULT_FILE", str(result_file))
    assert main(["train", "--config", str(job_file)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "models" / "reviews-r3-1a2b3c4d")
    raw = result_file.read_text(encoding="utf-8")
    assert raw.count("\n") == 1
    assert len(raw.encode()) <= 4096
    result = json.loads(raw)
    assert result["modelVersion"] == "reviews-r3-1a2b3c4d"
    assert result["artifactUri"] == "pvc://models/reviews/reviews-r3-1a2b3c4d"
    assert result["dataset"]["count"] == 60
    assert {"accuracy", "macro_f1"} <= set(result["metrics"])
    # Both versions scored on the same held-out annotations, both scores in the verdict.
    verdict = result["promotion"]
    assert (verdict["metric"], verdict["servingVersion"]) == ("macro_f1", "serving")
    assert verdict["candidateScore"] == pytest.approx(result["metrics"]["macro_f1"], abs=1e-6)
    assert verdict["passed"] is (verdict["candidateScore"] > verdict["servingScore"])
    assert "on the same annotations" in verdict["reason"]
    assert {"bestEpoch", "earlyStopped"} <= set(result)
    config = read(tmp_path / "models" / "reviews-r3-1a2b3c4d" / "config.json")
    assert config["hyper"]["seed"] == 3
    assert config["hyper"]["max_sequence_length"] == 32
