"""`labelloop demo`: simulated annotators, and the report's promised fields.

The end-to-end run is the demo itself on a slice of DynaSent with the tiny model and one
round, so that it fits in test time; `make demo` runs the defaults on the whole file.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from labelloop.api.labelconfig import parse_label_config
from labelloop.local.demo import Annotators, DemoError, DemoSettings, load_examples, run_demo
from paths import SHARED_DATA
from trainer.support import build_tiny_model

SCHEMA = parse_label_config(
    '<View><Text name="text" value="$text"/><Choices name="s" toName="text">'
    '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>'
    "</Choices></View>"
)


def dynasent_slice(path: Path, count: int) -> Path:
    path.write_text("".join(SHARED_DATA.read_text().splitlines(keepends=True)[:count]))
    return path


def test_dynasent_answers_are_the_real_workers_without_mixed(tmp_path: Path) -> None:
    examples, dropped = load_examples(dynasent_slice(tmp_path / "d.jsonl", 50), SCHEMA, None, None)
    rows = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert dropped == 0 and len(examples) == len({r["sentence"] for r in rows})
    first, row = examples[0], rows[0]
    assert first.data == {"text": row["sentence"]}
    assert first.gold == row["gold_label"].capitalize()
    expected = {
        (worker, label.capitalize())
        for label, workers in row["label_distribution"].items()
        if label != "mixed"
        for worker in workers
    }
    assert set(first.answers) == expected
    # Each annotation is one of the sentence's real answers; a worker stays on one user.
    annotators = Annotators(SCHEMA, [11, 12, 13], 0.0, random.Random(0))
    given = [annotators.answer(first) for _ in range(200)]
    assert {label for _, label in given} <= {label for _, label in expected}
    users_of = {
        worker: {user for user, label in given if (worker, label) in first.answers}
        for worker, _ in first.answers
    }
    assert all(len(users) <= 3 for users in users_of.values())


@pytest.mark.parametrize(("accuracy", "gold_share"), [(1.0, 1.0), (0.0, 0.0)])
def test_plain_files_are_answered_with_the_configured_accuracy(
    tmp_path: Path, accuracy: float, gold_share: float
) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("review,stars\ngreat place,positive\nawful,NEGATIVE\nok,unknown\n,neutral\n")
    examples, dropped = load_examples(path, SCHEMA, "review", "stars")
    assert [(e.data["text"], e.gold) for e in examples] == [
        ("great place", "Positive"),
        ("awful", "Negative"),
    ]
    assert dropped == 2  # an unknown label, an empty text
    annotators = Annotators(SCHEMA, [1], accuracy, random.Random(0))
    answers = Counter(annotators.answer(examples[0])[1] == "Positive" for _ in range(100))
    assert answers[True] / 100 == gold_share


def test_a_file_without_usable_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"t": "a", "l": "other"}\n')
    with pytest.raises(DemoError, match="--data: no row"):
        load_examples(path, SCHEMA, "t", "l")


@pytest.mark.labelstudio
@pytest.mark.trainer
def test_the_demo_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = DemoSettings(
        data=dynasent_slice(tmp_path / "dynasent-slice.jsonl", 40),
        rounds=1,
        batch=12,
        base_model=build_tiny_model(),
        work_dir=tmp_path / "work",
        report_dir=tmp_path / "report",
    )
    run_demo(settings)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["dataset"]["tasks"] == 40
    assert "CC BY 4.0" in report["dataset"]["attribution"]
    assert report["settings"]["rounds"] == 1 and report["settings"]["batch"] == 12
    assert report["timings"]["totalSeconds"] > report["timings"]["labelStudioStartSeconds"] > 0
    zero, first = report["rounds"]
    assert zero["round"] == 0 and zero["labels"] == 0 and zero["evalMacroF1"] is None
    assert zero["modelVersion"].startswith("zero-shot-")
    assert first["round"] == 1 and first["labels"] == 12
    assert first["unlabelledTasks"] == 40 - 12
    for row in (zero, first):
        assert 0 <= row["prelabelAccuracy"] <= 1
        assert 0 <= row["accepted"] <= 1  # the next batch reviewed its prelabels
    assert 0 <= first["evalMacroF1"] <= 1
    # The gate decides which version serves after the round.
    assert first["modelVersion"].startswith("demo-r1-") == first["gatePassed"]
    table = capsys.readouterr().out
    assert "| round | labels | model version" in table
    assert f"| 1     | 12     | {first['modelVersion']}" in table
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| round | labels |" in markdown and "accuracy.png" in markdown
    assert (tmp_path / "report" / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
