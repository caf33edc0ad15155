"""The CLI round trip with real weights (all-MiniLM-L6-v2) on real data (DynaSent R1).

Data: DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0;
the slices copied here carry that attribution in an ATTRIBUTION file next to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelloop_trainer.cli import main
from trainer.support import DYNASENT, DYNASENT_ATTRIBUTION, run_module, write_jsonl

pytestmark = pytest.mark.trainer


def dynasent_slice(start: int, stop: int, mixed: int) -> list[dict[str, Any]]:
    """Rows `start:stop`, plus `mixed` rows relabelled `mixed`.

    This file holds only rows whose majority is positive, negative or neutral, but annotators
    also answer `mixed` (the full DynaSent release has such majorities); the relabelled rows
    stand for those, and must be dropped as unknown labels.
    """
    rows = [json.loads(line) for line in DYNASENT.read_text(encoding="utf-8").splitlines()]
    picked = rows[start:stop]
    voted_mixed = [r for r in rows[stop:] if r["label_distribution"]["mixed"]][:mixed]
    return picked + [{**r, "gold_label": "mixed"} for r in voted_mixed]


def test_train_and_evaluate_round_trip_on_dynasent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], minilm: Path
) -> None:
    (tmp_path / "ATTRIBUTION").write_text(DYNASENT_ATTRIBUTION + "\n", encoding="utf-8")
    train_file = write_jsonl(tmp_path / "train.jsonl", dynasent_slice(0, 160, mixed=3))
    held_file = write_jsonl(tmp_path / "held.jsonl", dynasent_slice(2000, 2100, mixed=2))
    code = main(
        ["train", "--data", str(train_file), "--text-field", "sentence",
         "--label-field", "gold_label", "--labels", "positive,negative,neutral",
         "--base-model", str(minilm), "--output", str(tmp_path / "models"),
         "--epochs", "1", "--max-seq-length", "64", "--learning-rate", "5e-4"]
    )  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    version = Path(out.strip().splitlines()[-1])
    manifest = json.loads((version / "dataset.json").read_text(encoding="utf-8"))
    assert manifest["count"] == 160
    assert manifest["cleaning"]["dropped"] == {"unknown_label": 3}
    assert manifest["cleaning"]["unknownLabels"] == {"mixed": 3}
    assert manifest["labels"] == ["positive", "negative", "neutral"]

    done = run_module(
        ["evaluate", "--model", str(version), "--data", str(held_file),
         "--text-field", "sentence", "--label-field", "gold_label"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert 0 <= result["accuracy"] <= 1
    assert 0 <= result["macro_f1"] <= 1
    assert set(result["per_class"]) == {"positive", "negative", "neutral"}
    assert sum(map(sum, result["confusion_matrix"]["matrix"])) == 100
    assert result["dataset"]["cleaning"]["dropped"] == {"unknown_label": 2}
    assert result["modelVersion"] == version.name


def test_a_first_version_is_gated_against_the_zero_shot_guess(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], minilm: Path
) -> None:
    """Before any version serves, `mustImprove` compares with the base model's zero-shot
    prelabels on the same held-out annotations (what the local runner serves in round 0)."""
    data = write_jsonl(tmp_path / "train.jsonl", dynasent_slice(0, 120, mixed=0))
    code = main(
        ["train", "--data", str(data), "--text-field", "sentence",
         "--label-field", "gold_label", "--base-model", str(minilm),
         "--output", str(tmp_path / "models"), "--epochs", "1", "--max-seq-length", "64",
         "--promotion-metric", "f1"]
    )  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    version = Path(out.strip().splitlines()[-1])
    metrics = json.loads((version / "metrics.json").read_text(encoding="utf-8"))
    verdict = metrics["promotion"]
    assert verdict["servingVersion"] == "zero-shot"
    assert 0 < verdict["servingScore"] < 1
    assert verdict["passed"] is (verdict["candidateScore"] > verdict["servingScore"])
