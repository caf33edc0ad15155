"""`make bench-gpu` as a smoke test: the whole script on the CPU with tiny models.

Run as `make bench-gpu` runs it, in a process of its own: it trains both sides in child
processes and serves in `serve` processes, and must leave one JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paths import REPO_ROOT

pytestmark = pytest.mark.trainer

SCRIPT = REPO_ROOT / "trainer-image" / "benchmarks" / "bench_gpu.py"


def test_bench_gpu_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    output = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--output", str(output), "--rows", "60",
         "--tasks", "64", "--bulk", "300"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(output.read_text(encoding="utf-8"))
    assert report["smoke"] is True
    (training,) = report["training"].values()
    for side in ("labelloop", "hf_trainer_tuned"):
        assert training[side]["tokens_per_second"] > 0
        assert 0.0 <= training[side]["accuracy"] <= 1.0
    assert training["throughput_ratio"] > 0
    serving = report["serving"]
    assert serving["failed_requests"] == 0 and serving["failures"] == []
    assert [load["clients"] for load in serving["loads"]] == [64, 256]
    for load in serving["loads"]:
        for side in ("batched", "one_by_one"):
            assert load[side]["tasks"] == 64 and load[side]["failed_requests"] == 0
            assert load[side]["model_ms_per_task"] > 0
        assert load["one_by_one"]["mean_forward_pass_size"] == 1.0
        assert load["throughput_ratio"] > 0 and load["model_ratio"] > 0
    bulk = serving["bulk_request"]
    assert bulk["batched"]["complete"] and bulk["one_by_one"]["complete"]
    assert bulk["same_labels_as_single_requests"] == 1.0
