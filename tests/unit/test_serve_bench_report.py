"""bench_serve.py's report arithmetic: a lost request never counts as throughput."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from paths import REPO_ROOT


def bench_module() -> ModuleType:
    """The benchmark script, imported from its file (benchmarks/ is not a package)."""
    path = REPO_ROOT / "trainer-image" / "benchmarks" / "bench_serve.py"
    spec = importlib.util.spec_from_file_location("bench_serve", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = bench_module()


def test_throughput_and_latency_count_only_what_was_answered() -> None:
    outcome = bench.Outcome(
        answers=[("positive", 0.9), None, None, ("negative", 0.6)],
        latencies=[0.010, 0.030],
        failures=[{"request": 1, "error": "TimeoutError: "}],
        seconds=2.0,
    )
    result = bench.summary(outcome, tasks=4)
    assert result["predictions_per_second"] == 1.0  # 2 answered tasks in 2 s, not 4
    assert (result["latency_p50_ms"], result["latency_p99_ms"]) == (10.0, 10.0)
    assert result["failed_requests"] == 1


def test_a_load_with_nothing_answered_has_no_latency_and_no_ratio() -> None:
    outcome = bench.Outcome(answers=[None], failures=[{"request": 0, "error": "reset"}], seconds=1)
    lost = bench.summary(outcome, tasks=1)
    assert lost["predictions_per_second"] == 0.0 and lost["latency_p99_ms"] is None
    served = {"predictions_per_second": 50.0, "model_ms_per_task": 5.0,
              "server_cpu_ms_per_task": 6.0, "client_cpu_ms_per_task": 0.5}  # fmt: skip
    lost.update(model_ms_per_task=0.0, server_cpu_ms_per_task=None, client_cpu_ms_per_task=0.0)
    assert bench.ratios(served, lost) == {
        "throughput_ratio": None,
        "model_ratio": None,
        "cpu_ratio": None,
    }


def test_ratios_say_how_many_times_better_batched_is() -> None:
    batched = {"predictions_per_second": 150.0, "model_ms_per_task": 5.0,
               "server_cpu_ms_per_task": 6.0, "client_cpu_ms_per_task": 0.5}  # fmt: skip
    one_by_one = {"predictions_per_second": 100.0, "model_ms_per_task": 8.0,
                  "server_cpu_ms_per_task": 9.5, "client_cpu_ms_per_task": 0.25}  # fmt: skip
    assert bench.ratios(batched, one_by_one) == {
        "throughput_ratio": 1.5,
        "model_ratio": 1.6,
        "cpu_ratio": 1.5,
    }
