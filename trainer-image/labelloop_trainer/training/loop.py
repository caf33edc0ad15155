"""LoRA fine-tuning: a small hand-written loop rather than Hugging Face's `Trainer`.

Why not `Trainer`: the loop itself is forty lines, and owning it makes the parts that decide
throughput explicit instead of spread over a hundred `TrainingArguments`:

- batches of similar length padded only to their longest member (`batches.py`), so short
  annotation texts do not pay for long ones, and texts tokenised once up front;
- one evaluation per epoch (early stopping needs it) on length-sorted, doubled batches in
  `inference_mode`, sharded over the processes, and no extra final evaluation: the result is
  the best epoch's evaluation, whose weights are kept in memory;
- bf16 autocast and TF32 on GPUs that have them, a fused AdamW over the trainable
  parameters only, and `no_sync` between accumulated micro-batches under DDP;
- CPU threads: the usable cores split between a node's processes (`distributed.py`), then
  the fastest of n, n/2, … 1 threads measured on a few passes (`tune_cpu_threads`);
- checkpoints holding only the trainable weights and optimiser state (`checkpoints.py`).

The batch size `auto` serves learning first and speed second (`auto_batch_size`): it is the
largest power of two that leaves every epoch at least `MIN_STEPS_PER_EPOCH` optimiser steps
(a LoRA adapter learns from the number of updates it gets: on 11,539 tweets a batch of 1,024,
22 steps in two epochs, learnt only the majority class), at least `MIN_AUTO_BATCH_SIZE`, at
most 16 on a CPU (larger batches are no faster there), and on a GPU one whose forward and
backward passes on the longest training sequences stay within a third of its memory
(halving until they do).

`epochs: auto` gives the adapter enough updates in all: the passes needed for
`MIN_AUTO_STEPS` optimiser steps, at least `MIN_AUTO_EPOCHS` and at most `MAX_AUTO_EPOCHS`.
A few hundred labels make short epochs (480 DynaSent rows: 60 steps of 8); with them, three
epochs reached accuracy 0.58 on the rest of the data set and ten 0.64. A large data set keeps
three. Early stopping on the promotion metric still ends a run whose metric stays clearly
below its best (by more than its chance variation on the held-out examples:
`checkpoints.EarlyStopping`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch.nn.parallel import DistributedDataParallel
from transformers import PreTrainedTokenizerBase, get_scheduler

from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training import checkpoints, scores
from labelloop_trainer.training.batches import collate, iterate, train_batches
from labelloop_trainer.training.data import (
    Dataset,
    Example,
    held_out_split,
    load_dataset,
    manifest,
)
from labelloop_trainer.training.distributed import Context, barrier, min_over_processes
from labelloop_trainer.training.evaluate import autocast, predict_sharded, score
from labelloop_trainer.training.features import Feature, encode, output_names
from labelloop_trainer.training.modeling import (
    SentenceClassifier,
    base_model,
    load_tokenizer,
    use_bf16,
    with_lora,
)
from labelloop_trainer.training.output import check_new, derive_version
from labelloop_trainer.training.progress import Progress
from labelloop_trainer.training.settings import TrainConfig
from labelloop_trainer.training.zeroshot import start_from_zero_shot

MIN_STEPS_PER_EPOCH = 50
MIN_AUTO_STEPS = 500
MIN_AUTO_EPOCHS = 3
MAX_AUTO_EPOCHS = 10
MIN_AUTO_BATCH_SIZE = 4
MAX_CPU_BATCH_SIZE = 16
MAX_AUTO_BATCH_SIZE = 1024
MAX_GRAD_NORM = 1.0
THREAD_PROBE_PASSES = 3


@dataclass(frozen=True)
class Outcome:
    """A finished training run, with the best epoch's weights loaded into `model`."""

    version: str
    model: PeftModel
    tokenizer: PreTrainedTokenizerBase
    output_names: tuple[str, ...]
    model_type: str
    manifest: dict[str, Any]
    labels: tuple[str, ...]
    held_out: tuple[Example, ...]
    """The examples evaluated on: the promotion gate scores the serving version on them."""
    metrics: dict[str, Any]
    best_epoch: int
    epochs_run: int
    early_stopped: bool
    history: list[dict[str, float]]
    resumed_from_epoch: int
    batch_size: int
    train_seconds: float
    samples_per_second: float


def checkpoint_dir(output_dir: Path, version: str) -> Path:
    """`<output>/.checkpoints/<version>/`, as in the contract."""
    return output_dir / ".checkpoints" / version


@dataclass(frozen=True)
class Prepared:
    """The cleaned data of a run, its split and manifest, and the version it produces."""

    dataset: Dataset
    train_idx: list[int]
    eval_idx: list[int]
    manifest: dict[str, Any]
    version: str


def prepare(cfg: TrainConfig) -> Prepared:
    """Read and split the data; the version is `cfg.model_version`, else one derived from the
    cleaned data and the configuration (`output.derive_version`)."""
    data = cfg.data
    dataset = load_dataset(
        data.path, data.text_field, data.label_field, data.task_type, data.labels
    )
    train_idx, eval_idx = held_out_split(dataset.examples, cfg.hyper.eval_split, cfg.hyper.seed)
    described = manifest(dataset, data.source or data.path, train_idx, eval_idx)
    version = cfg.model_version or derive_version(data.path.stem, described["hash"], cfg.identity())
    return Prepared(dataset, train_idx, eval_idx, described, version)


def train(
    cfg: TrainConfig, ctx: Context, progress: Progress, *, work_name: str | None = None
) -> Outcome:
    """Train one version; every process returns the same outcome, only rank 0 writes.
    `work_name` names the checkpoints' directory (default: the version's)."""
    started = time.perf_counter()
    hyper = cfg.hyper
    data = cfg.data
    _, plugins = scores.requested(cfg.metrics)
    monitor = scores.canonical(hyper.monitor)
    if monitor not in scores.BUILT_IN and not plugins:
        raise BadInputError(f"earlyStopping.metric: {hyper.monitor!r} is not computed")
    prepared = prepare(cfg)
    dataset, train_idx, eval_idx = prepared.dataset, prepared.train_idx, prepared.eval_idx
    described, version = prepared.manifest, prepared.version
    check_new(cfg.output_dir, version)
    progress.event("dataset", version=version, **described["cleaning"], labels=described["labels"])

    tokenizer = load_tokenizer(cfg.base_model_dir)
    names = output_names(data.task_type, dataset.labels)
    features = encode(
        dataset.examples, tokenizer, data.task_type, dataset.labels, hyper.max_sequence_length
    )
    train_features = [features[i] for i in train_idx]
    eval_features = [features[i] for i in eval_idx]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    torch.manual_seed(hyper.seed)
    pretrained = base_model(cfg.base_model_dir, data.task_type, names)
    if isinstance(pretrained, SentenceClassifier):
        start_from_zero_shot(pretrained, tokenizer, names)
    model_type = str(pretrained.config.model_type)
    model = with_lora(pretrained, data.task_type, cfg.lora)
    model.to(ctx.device)
    bf16 = use_bf16(ctx.device)
    identity = f"{cfg.identity()}\n{described['hash']}\nprocesses={ctx.world}"
    saved_at = checkpoint_dir(cfg.output_dir, work_name or version)
    resumed = checkpoints.latest(saved_at, identity)
    batch_size = (
        resumed.batch_size
        if resumed is not None
        else hyper.batch_size
        or auto_batch_size(
            ctx,
            model,
            train_features,
            pad_id,
            bf16=bf16,
            accumulation=hyper.gradient_accumulation_steps,
        )
    )
    if ctx.device.type == "cpu":
        tune_cpu_threads(model, train_features, batch_size, pad_id)
    torch.manual_seed(hyper.seed + ctx.rank)

    lengths = [len(f.input_ids) for f in train_features]
    epoch_batches = len(
        train_batches(lengths, batch_size, seed=hyper.seed, epoch=1, rank=ctx.rank, world=ctx.world)
    )
    accumulation = hyper.gradient_accumulation_steps
    steps_per_epoch = math.ceil(epoch_batches / accumulation)
    epochs = hyper.epochs or auto_epochs(steps_per_epoch)
    total_steps = steps_per_epoch * epochs
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable,
        lr=hyper.learning_rate,
        weight_decay=hyper.weight_decay,
        fused=ctx.device.type == "cuda",
    )
    scheduler = get_scheduler(
        hyper.lr_scheduler,
        optimizer,
        num_warmup_steps=round(hyper.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )

    early = checkpoints.EarlyStopping()
    tolerance = scores.sampling_noise(monitor, len(eval_features))
    best_state = checkpoints.trainable_state(model)
    best_metrics: dict[str, Any] = {}
    first_epoch, step = 1, 0
    if resumed is not None:
        checkpoints.restore_trainable(model, resumed.trainable)
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
        torch.set_rng_state(resumed.rng)
        early, best_state, best_metrics = (
            resumed.early,
            resumed.best_trainable,
            resumed.best_metrics,
        )
        first_epoch, step = resumed.epoch + 1, resumed.global_step
        progress.event("resumed", fromEpoch=resumed.epoch, checkpoint=str(saved_at))

    ddp = (
        DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
        if ctx.world > 1
        else None
    )
    network: torch.nn.Module = ddp or model
    progress.event(
        "training",
        trainExamples=len(train_features),
        evalExamples=len(eval_features),
        batchSize=batch_size,
        processes=ctx.world,
        device=str(ctx.device),
        bf16=bf16,
        threads=torch.get_num_threads(),
        epochs=epochs,
        totalSteps=total_steps,
    )
    loop_started = time.perf_counter()
    samples = 0
    epochs_run = first_epoch - 1
    stopped_early = early.stale >= hyper.patience and first_epoch <= epochs
    multiple_of = 8 if ctx.device.type == "cuda" else 1
    for epoch in range(first_epoch, epochs + 1):
        if stopped_early:  # resumed after the epoch that stopped it
            break
        epochs_run = epoch
        network.train()
        batches = train_batches(
            lengths, batch_size, seed=hyper.seed, epoch=epoch, rank=ctx.rank, world=ctx.world
        )
        running, seen = torch.zeros((), device=ctx.device), 0
        for i, (indices, batch) in enumerate(iterate(train_features, batches, pad_id, multiple_of)):
            last_micro = (i + 1) % accumulation == 0 or i + 1 == len(batches)
            inputs = {k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()}
            sync = ddp.no_sync() if ddp is not None and not last_micro else nullcontext()
            with sync:
                with autocast(ctx.device, bf16):
                    loss = network(**inputs).loss
                (loss / accumulation).backward()
            running += loss.detach().float()
            seen += 1
            samples += len(indices)
            if last_micro:
                torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                in_epoch = math.ceil((i + 1) / accumulation)
                if progress.due(in_epoch, steps_per_epoch):
                    progress.step(
                        epoch=epoch,
                        step_in_epoch=in_epoch,
                        epoch_steps=steps_per_epoch,
                        step=step,
                        total=total_steps,
                        loss=float(running) / seen,
                        learning_rate=scheduler.get_last_lr()[0],
                    )
                    running.zero_()
                    seen = 0
        evaluation = score(
            data.task_type,
            dataset.labels,
            eval_features,
            predict_sharded(
                ctx,
                model,
                eval_features,
                batch_size=2 * batch_size,
                task_type=data.task_type,
                pad_id=pad_id,
                bf16=bf16,
            ),
            plugins,
        )
        scalars = scores.scalars(evaluation)
        if monitor not in scalars:
            raise BadInputError(
                f"earlyStopping.metric: {hyper.monitor!r} is not computed; "
                f"available: {', '.join(sorted(scalars))}"
            )
        early.history.append({"epoch": epoch, **scalars})
        if early.update(scalars[monitor], epoch, scores.higher_is_better(monitor), tolerance):
            best_state, best_metrics = checkpoints.trainable_state(model), evaluation
        stopped_early = early.stale >= hyper.patience and epoch < epochs
        progress.event("epoch", epoch=epoch, metrics=scalars, best=early.best_epoch == epoch)
        progress.epoch_end()
        if ctx.is_main:
            checkpoints.save(
                saved_at,
                checkpoints.Checkpoint(
                    epoch=epoch,
                    identity=identity,
                    trainable=checkpoints.trainable_state(model),
                    best_trainable=best_state,
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    rng=torch.get_rng_state(),
                    early=early,
                    best_metrics=best_metrics,
                    global_step=step,
                    batch_size=batch_size,
                ),
            )
        barrier(ctx)
        if stopped_early:
            break
    checkpoints.restore_trainable(model, best_state)
    seconds = time.perf_counter() - loop_started
    progress.event(
        "trained",
        seconds=round(time.perf_counter() - started, 2),
        bestEpoch=early.best_epoch,
        earlyStopped=stopped_early,
    )
    return Outcome(
        version=version,
        model=model,
        tokenizer=tokenizer,
        output_names=names,
        model_type=model_type,
        manifest=described,
        labels=dataset.labels,
        held_out=tuple(dataset.examples[i] for i in eval_idx),
        metrics=best_metrics,
        best_epoch=early.best_epoch,
        epochs_run=epochs_run,
        early_stopped=stopped_early,
        history=early.history,
        resumed_from_epoch=first_epoch - 1,
        batch_size=batch_size,
        train_seconds=seconds,
        samples_per_second=samples * ctx.world / seconds if seconds > 0 else 0.0,
    )


def tune_cpu_threads(
    model: torch.nn.Module, features: Sequence[Feature], batch_size: int, pad_id: int
) -> int:
    """Use the fastest of n, n/2, … 1 threads for a few training passes on a typical batch.

    A thread pool only helps while its threads have cores to themselves; on a machine that
    other work keeps busy, one descheduled thread stalls every parallel region, and measured
    on such a machine one thread trained MiniLM about three times faster than two. The probe
    costs a few forward/backward passes per candidate; the weights are not changed.
    """
    candidates = []
    threads = torch.get_num_threads()
    while threads >= 1:
        candidates.append(threads)
        threads //= 2
    if len(candidates) == 1:
        return candidates[0]
    typical = sorted(features, key=lambda f: len(f.input_ids))[len(features) // 2]
    batch = collate([typical] * batch_size, pad_id)
    model.train()
    timings = {}
    for threads in candidates:
        torch.set_num_threads(threads)
        model(**batch).loss.backward()  # warm-up at this width
        began = time.perf_counter()
        for _ in range(THREAD_PROBE_PASSES):
            model(**batch).loss.backward()
        timings[threads] = time.perf_counter() - began
    model.zero_grad(set_to_none=True)
    best = min(timings, key=timings.__getitem__)
    torch.set_num_threads(best)
    return best


def auto_epochs(steps_per_epoch: int) -> int:
    """The epochs for `epochs: auto`: enough for `MIN_AUTO_STEPS` optimiser steps, within
    `MIN_AUTO_EPOCHS` and `MAX_AUTO_EPOCHS` (see the module docstring)."""
    wanted = math.ceil(MIN_AUTO_STEPS / max(1, steps_per_epoch))
    return min(MAX_AUTO_EPOCHS, max(MIN_AUTO_EPOCHS, wanted))


def steps_cap(examples: int, world: int, accumulation: int, gpu: bool) -> int:
    """The largest batch size `auto` may pick before memory is asked: a power of two that
    leaves each epoch `MIN_STEPS_PER_EPOCH` optimiser steps, within the bounds above."""
    per_process = max(1, examples // world)
    cap = per_process // (MIN_STEPS_PER_EPOCH * accumulation)
    cap = min(cap, MAX_AUTO_BATCH_SIZE if gpu else MAX_CPU_BATCH_SIZE)
    cap = max(cap, MIN_AUTO_BATCH_SIZE)
    return 1 << (cap.bit_length() - 1)


def auto_batch_size(
    ctx: Context,
    model: torch.nn.Module,
    features: Sequence[Feature],
    pad_id: int,
    *,
    bf16: bool,
    accumulation: int,
) -> int:
    """The batch size for `batchSize: auto` (see the module docstring)."""
    gpu = ctx.device.type == "cuda"
    size = steps_cap(len(features), ctx.world, accumulation, gpu)
    if not gpu:
        return size
    budget = torch.cuda.get_device_properties(ctx.device).total_memory / 3
    longest = sorted(features, key=lambda f: len(f.input_ids), reverse=True)
    model.train()
    while size > 1:
        probe = collate([longest[i % len(longest)] for i in range(size)], pad_id, 8)
        if _fits(model, probe, ctx.device, bf16, budget):
            break
        size //= 2
    return min_over_processes(ctx, size)


def _fits(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    bf16: bool,
    budget: float,
) -> bool:
    inputs = {k: v.to(device) for k, v in batch.items()}
    torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(2):
            with autocast(device, bf16):
                loss = model(**inputs).loss
            loss.backward()
        fits = torch.cuda.max_memory_allocated(device) <= budget
    except torch.OutOfMemoryError:
        fits = False
    model.zero_grad(set_to_none=True)
    del inputs
    torch.cuda.empty_cache()
    return fits
