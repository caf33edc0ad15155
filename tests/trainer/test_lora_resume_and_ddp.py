"""A killed run resumes from its last epoch checkpoint; two DDP processes give the same shape.

Both run the real command in separate processes (`python -m labelloop_trainer`, `torchrun`),
as the operator's Job does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labelloop_trainer.cli import main
from trainer.support import fast_flags, run_module, toy_sentences, write_jsonl

pytestmark = pytest.mark.trainer


def events(log: str, name: str) -> list[dict[str, Any]]:
    """The JSON progress events called `name` in a log."""
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path, tiny_model: Path) -> None:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(100))
    output = tmp_path / "models"
    # Patience of 8: early stopping must not end either run before the epochs being counted.
    args = ["train", "--data", str(data), "--epochs", "8", "--model-version", "v1",
            "--patience", "8", *fast_flags(tiny_model, output)]  # fmt: skip
    checkpoints = output / ".checkpoints" / "v1"
    first = subprocess.Popen(
        [sys.executable, "-m", "labelloop_trainer", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while not any(checkpoints.glob("epoch-*.pt")) and first.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    _, first_log = first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert not (output / "v1").exists()
    killed_after = max(e["epoch"] for e in events(first_log, "epoch"))
    assert killed_after < 8

    second = run_module(args)
    assert second.returncode == 0, second.stderr
    resumed = events(second.stderr, "resumed")
    assert len(resumed) == 1
    start = resumed[0]["fromEpoch"]
    assert start >= killed_after
    assert [e["epoch"] for e in events(second.stderr, "epoch")] == list(range(start + 1, 9))
    progress = events(second.stderr, "progress")
    steps_per_epoch = progress[0]["totalSteps"] // 8
    assert min(e["step"] for e in progress) > start * steps_per_epoch  # not from step 1
    metrics = json.loads((output / "v1" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["training"]["resumedFromEpoch"] == start
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, 9))
    assert not checkpoints.exists()


def test_two_ddp_processes_give_the_same_result_shape_as_one(
    tmp_path: Path,
    tiny_model: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_jsonl(tmp_path / "toy.jsonl", toy_sentences(30))
    common = ["--data", str(data), "--epochs", "2", "--model-version", "v1"]
    results = {}
    for processes in (1, 2):
        output = tmp_path / f"models-{processes}"
        result_file = tmp_path / f"result-{processes}.json"
        monkeypatch.setenv("LABELLOOP_RESULT_FILE", str(result_file))
        args = ["train", *common, *fast_flags(tiny_model, output)]
        if processes == 1:
            assert main(args) == 0
            out, err = capsys.readouterr()
        else:
            done = subprocess.run(
                [sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc-per-node=2", "-m", "labelloop_trainer", *args],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            out, err = done.stdout, done.stderr
        assert out.strip().splitlines() == [str(output / "v1")]  # only rank 0 prints
        assert len(events(err, "training")) == 1  # only rank 0 logs
        version = output / "v1"
        results[processes] = {
            "files": sorted(p.relative_to(version).as_posix() for p in version.rglob("*")),
            "metrics": json.loads((version / "metrics.json").read_text(encoding="utf-8")),
            "result": json.loads(result_file.read_text(encoding="utf-8")),
        }
        assert sorted(p.name for p in output.iterdir()) == ["v1"]  # no stray files
    one, two = results[1], results[2]
    assert one["files"] == two["files"]
    assert one["result"].keys() == two["result"].keys()
    assert one["result"]["dataset"] == two["result"]["dataset"]
    assert one["metrics"]["metrics"].keys() == two["metrics"]["metrics"].keys()
    assert (one["metrics"]["training"]["processes"], two["metrics"]["training"]["processes"]) == (
        1,
        2,
    )
    manifest = json.loads((tmp_path / "models-2" / "v1" / "dataset.json").read_text())
    per_class = two["metrics"]["metrics"]["per_class"]
    assert sum(c["support"] for c in per_class.values()) == manifest["evalCount"]
