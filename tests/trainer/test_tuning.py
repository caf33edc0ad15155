"""`spec.tuning` end to end on CPU: a small seeded search, a failing trial, the best kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelloop_trainer.cli import main
from labelloop_trainer.training import tuning
from labelloop_trainer.training.loop import train
from trainer.support import fast_flags, toy_sentences, write_jsonl

pytestmark = pytest.mark.trainer


def search(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> tuple[Path, dict[str, Any]]:
    """A 3-trial search on the toy set; the version directory and the result line."""
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(12))
    result_file = tmp_path / f"{output}.result"
    monkeypatch.setenv("LABELLOOP_RESULT_FILE", str(result_file))
    flags = fast_flags(tiny_model, tmp_path / output)
    code = main(
        ["train", "--data", str(data), *flags, "--tuning-trials", "3", "--seed", "5",
         "--max-seq-length", "16"]
    )  # fmt: skip
    assert code == 0
    version = next(p for p in (tmp_path / output).iterdir() if not p.name.startswith("."))
    return version, json.loads(result_file.read_text(encoding="utf-8"))


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_seeded_search_keeps_its_best_trial(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version, result = search(tmp_path, tiny_model, monkeypatch, "first")
    found = read(version / "metrics.json")["tuning"]
    trials = found["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(t["state"] == "complete" for t in trials)
    assert {"learning_rate", "lora_r", "epochs"} <= set(trials[0]["params"])
    best = max(trials, key=lambda t: t["score"])
    assert found["bestTrial"] == best["number"] and found["objective"] == "macro_f1"
    # The version is the best trial's model, trained with its parameters.
    metrics = read(version / "metrics.json")["metrics"]
    assert metrics["macro_f1"] == pytest.approx(best["score"], abs=1e-6)
    config = read(version / "config.json")
    assert config["hyper"]["learning_rate"] == best["params"]["learning_rate"]
    assert config["lora"]["r"] == best["params"]["lora_r"]
    assert config["hyper"]["epochs"] == best["params"]["epochs"]
    # The result line summarises it for the FineTuneJob's status.
    assert result["tuning"] == {
        "objective": "macro_f1", "trials": 3, "failed": 0, "bestTrial": best["number"],
        "bestScore": best["score"], "bestParameters": best["params"],
    }  # fmt: skip
    from labelloop.api.finetunejob import TuningSummary

    assert TuningSummary.model_validate(result["tuning"]).best_trial == best["number"]
    assert not (tmp_path / "first" / ".checkpoints").exists()  # every trial's removed

    # Seeded: the same data and settings propose the same trials.
    _, again = search(tmp_path, tiny_model, monkeypatch, "second")
    assert again["tuning"] == result["tuning"]


def test_a_failing_trial_does_not_fail_the_search(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flaky(cfg: Any, ctx: Any, progress: Any, *, work_name: str | None = None) -> Any:
        if work_name is not None and work_name.endswith(".trial-1"):
            raise RuntimeError("CUDA out of memory (simulated)")
        return train(cfg, ctx, progress, work_name=work_name)

    monkeypatch.setattr(tuning, "train", flaky)
    version, result = search(tmp_path, tiny_model, monkeypatch, "flaky")
    trials = read(version / "metrics.json")["tuning"]["trials"]
    assert [t["state"] for t in trials] == ["complete", "failed", "complete"]
    assert trials[1]["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert "score" not in trials[1]
    assert result["tuning"]["failed"] == 1 and result["tuning"]["bestTrial"] in (0, 2)


def test_a_search_whose_every_trial_fails_fails(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("loss is NaN (simulated)")

    monkeypatch.setattr(tuning, "train", broken)
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(6))
    code = main(["train", "--data", str(data), *fast_flags(tiny_model, tmp_path / "m"),
                 "--tuning-trials", "2"])  # fmt: skip
    assert code == 1
