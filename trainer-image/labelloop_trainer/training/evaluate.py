"""Predicting on a held-out set and scoring the predictions.

Inference runs under `torch.inference_mode` on length-sorted batches twice the training
batch size (no activations are kept for a backward pass, so twice as many fit), and under
DDP each process scores only its share and the predictions are gathered: the evaluation
after every epoch, which early stopping needs, costs one pass over the eval set and nothing
more. The final metrics are those of the best epoch's evaluation, not of an extra pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.training import scores
from labelloop_trainer.training.batches import eval_batches, iterate
from labelloop_trainer.training.data import Dataset, Example, load_dataset
from labelloop_trainer.training.distributed import Context, gather
from labelloop_trainer.training.features import IGNORE, Feature, encode, output_names
from labelloop_trainer.training.output import LoadedVersion, load_version

Prediction = int | tuple[bool, ...] | tuple[int, ...]
"""A class id, a multi-hot choice, or the tag ids of the scored tokens (NER)."""


@dataclass(frozen=True)
class Predictions:
    """Predictions by example index, and the summed loss (None: a model without one, such
    as the zero-shot guess)."""

    by_index: dict[int, Prediction]
    loss_sum: float | None

    @property
    def loss(self) -> float | None:
        """The mean loss per example."""
        return None if self.loss_sum is None else self.loss_sum / max(1, len(self.by_index))


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when enabled, otherwise nothing."""
    if bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict(
    model: torch.nn.Module,
    features: Sequence[Feature],
    batches: Sequence[list[int]],
    *,
    task_type: TaskType,
    pad_id: int,
    device: torch.device,
    bf16: bool = False,
) -> Predictions:
    """Run the model over `batches` of `features`."""
    was_training = model.training
    model.eval()
    found: dict[int, Prediction] = {}
    loss_sum = 0.0
    multiple_of = 8 if device.type == "cuda" else 1
    with torch.inference_mode(), autocast(device, bf16):
        for indices, batch in iterate(features, batches, pad_id, multiple_of):
            inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            out = model(**inputs)
            loss_sum += float(out.loss) * len(indices)
            logits = out.logits.float()
            if task_type is TaskType.SINGLE_LABEL:
                rows: list[Prediction] = [int(i) for i in logits.argmax(-1).tolist()]
            elif task_type is TaskType.MULTI_LABEL:
                rows = [tuple(bool(x) for x in r) for r in (logits > 0).tolist()]
            else:
                tags = logits.argmax(-1).tolist()
                gold = batch["labels"].tolist()
                rows = [
                    tuple(t for t, g in zip(tr, gr, strict=True) if g != IGNORE)
                    for tr, gr in zip(tags, gold, strict=True)
                ]
            found.update(zip(indices, rows, strict=True))
    model.train(was_training)
    return Predictions(found, loss_sum)


def predict_sharded(
    ctx: Context,
    model: torch.nn.Module,
    features: Sequence[Feature],
    *,
    batch_size: int,
    task_type: TaskType,
    pad_id: int,
    bf16: bool,
) -> Predictions:
    """Each process predicts its share; every process gets all predictions."""
    lengths = [len(f.input_ids) for f in features]
    batches = eval_batches(lengths, batch_size, ctx.rank, ctx.world)
    mine = predict(
        model, features, batches, task_type=task_type, pad_id=pad_id, device=ctx.device, bf16=bf16
    )
    merged: dict[int, Prediction] = {}
    loss_sum = 0.0
    for part in gather(ctx, (mine.by_index, mine.loss_sum or 0.0)):
        merged.update(part[0])
        loss_sum += part[1]
    return Predictions(merged, loss_sum)


def score(
    task_type: TaskType,
    labels: Sequence[str],
    features: Sequence[Feature],
    predictions: Predictions,
    plugins: Sequence[str] = (),
) -> dict[str, Any]:
    """All metrics of `predictions` against the features' targets, plus `eval_loss`."""
    order = range(len(features))
    names = output_names(task_type, labels)
    result: dict[str, Any]
    if task_type is TaskType.SINGLE_LABEL:
        gold_ids = [_class_id(features[i].target) for i in order]
        pred_ids = [_class_id(predictions.by_index[i]) for i in order]
        result = scores.single_label(gold_ids, pred_ids, labels)
        gold: list[Any] = [labels[i] for i in gold_ids]
        pred: list[Any] = [labels[i] for i in pred_ids]
    elif task_type is TaskType.MULTI_LABEL:
        gold_hot = [_flags(features[i].target) for i in order]
        pred_hot = [_flags(predictions.by_index[i]) for i in order]
        result = scores.multi_label(gold_hot, pred_hot, labels)
        gold = [[lb for lb, on in zip(labels, h, strict=True) if on] for h in gold_hot]
        pred = [[lb for lb, on in zip(labels, h, strict=True) if on] for h in pred_hot]
    else:
        gold = [[names[t] for t in _tag_ids(features[i].target) if t != IGNORE] for i in order]
        pred = [[names[t] for t in _tag_ids(predictions.by_index[i])] for i in order]
        result = scores.ner(gold, pred, labels)
    if predictions.loss is not None:
        result["eval_loss"] = predictions.loss
    result.update(scores.run_plugins(plugins, gold, pred, labels))
    return result


def _class_id(value: object) -> int:
    assert isinstance(value, int)
    return value


def _flags(value: object) -> tuple[bool, ...]:
    assert isinstance(value, tuple)
    return tuple(bool(x) for x in value)


def _tag_ids(value: object) -> tuple[int, ...]:
    assert isinstance(value, tuple)
    return tuple(int(x) for x in value)


def score_version(
    loaded: LoadedVersion,
    examples: Sequence[Example],
    *,
    plugins: Sequence[str] = (),
    batch_size: int = 64,
) -> dict[str, Any]:
    """Every metric of a loaded version on `examples` (whose labels it must know)."""
    trained = loaded.label_map
    task_type = TaskType(trained["taskType"])
    labels: list[str] = trained["labels"]
    features = encode(examples, loaded.tokenizer, task_type, labels, trained["maxSequenceLength"])
    lengths = [len(f.input_ids) for f in features]
    pad_id = loaded.tokenizer.pad_token_id or 0
    device = next(loaded.model.parameters()).device
    batches = eval_batches(lengths, batch_size, 0, 1)
    predictions = predict(
        loaded.model, features, batches, task_type=task_type, pad_id=pad_id, device=device
    )
    return score(task_type, labels, features, predictions, plugins)


def evaluate_version(
    version_dir: Path,
    data_path: Path,
    text_field: str | None,
    label_field: str | None,
    *,
    plugins: Sequence[str] = (),
    base_model_dir: Path | None = None,
) -> tuple[dict[str, Any], Dataset]:
    """Score a saved version on a labelled file (rows with labels it lacks are dropped); the
    result and the rows it was scored on."""
    loaded = load_version(version_dir, base_model_dir)
    trained = loaded.label_map
    dataset = load_dataset(
        data_path,
        text_field or trained["textField"],
        label_field or trained["labelField"],
        TaskType(trained["taskType"]),
        trained["labels"],
    )
    result = score_version(loaded, dataset.examples, plugins=plugins)
    result["dataset"] = {"count": len(dataset.examples), "cleaning": dataset.report.to_json()}
    result["modelVersion"] = version_dir.name
    return result, dataset
