"""One checkpoint per epoch, so a restarted pod resumes where the last epoch ended.

A checkpoint holds only what cannot be recomputed: the trainable weights (adapters and head,
not the frozen base model), the optimiser and scheduler state, the RNG state, the
early-stopping bookkeeping and the best epoch's weights. It is one file written under a
temporary name and renamed, so a pod killed mid-write leaves the previous checkpoint intact;
only the newest is kept. Data order needs no saving: each epoch's batches are a function of
the seed and the epoch number. A checkpoint made with other settings is refused rather than
mixed into a different run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labelloop_trainer.errors import BadInputError

PREFIX = "epoch-"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters, on the CPU."""
    return {
        name: p.detach().to("cpu", copy=True)
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def restore_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put saved trainable parameters back into `model`."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


@dataclass
class EarlyStopping:
    """Which epoch was best, and how many evaluations in a row since were clearly worse.

    A score measured on a few dozen held-out annotations moves by chance from one epoch to
    the next. Counting every epoch below the best toward `patience` ends a run three noisy
    evaluations after a lucky one, often the first, before the model has learnt much. So an
    evaluation counts toward patience only when it is at least `tolerance` below the best
    (`scores.sampling_noise`: the score's chance variation on the held-out examples); one
    within the noise resets the count. The epoch kept is still the best. With no tolerance
    (losses, plug-in metrics) every evaluation that does not beat the best counts: the
    classic rule.
    """

    best: float | None = None
    best_epoch: int = 0
    stale: int = 0
    """Evaluations in a row clearly worse than the best."""
    history: list[dict[str, float]] = field(default_factory=list)

    def update(self, value: float, epoch: int, higher_is_better: bool, tolerance: float) -> bool:
        """Record an evaluation; True when it is the best so far."""
        gain = 0.0 if self.best is None else value - self.best
        if not higher_is_better:
            gain = -gain
        improved = self.best is None or gain > 0
        if improved:
            self.best, self.best_epoch = value, epoch
        self.stale = 0 if improved or gain > -tolerance else self.stale + 1
        return improved


@dataclass
class Checkpoint:
    """Everything a resumed run needs after `epoch`."""

    epoch: int
    identity: str
    trainable: dict[str, torch.Tensor]
    best_trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor
    early: EarlyStopping
    best_metrics: dict[str, Any]
    global_step: int
    batch_size: int


def save(directory: Path, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` atomically and remove older ones."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{PREFIX}{checkpoint.epoch:04d}.pt"
    staging = directory / f".{target.name}.tmp-{os.getpid()}"
    state = {
        "epoch": checkpoint.epoch,
        "identity": checkpoint.identity,
        "trainable": checkpoint.trainable,
        "best_trainable": checkpoint.best_trainable,
        "optimizer": checkpoint.optimizer,
        "scheduler": checkpoint.scheduler,
        "rng": checkpoint.rng,
        "early": {
            "best": checkpoint.early.best,
            "best_epoch": checkpoint.early.best_epoch,
            "stale": checkpoint.early.stale,
            "history": checkpoint.early.history,
        },
        "best_metrics": checkpoint.best_metrics,
        "global_step": checkpoint.global_step,
        "batch_size": checkpoint.batch_size,
    }
    torch.save(state, staging)
    staging.replace(target)
    for old in directory.glob(f"{PREFIX}*.pt"):
        if old != target:
            old.unlink()
    return target


def latest(directory: Path, identity: str) -> Checkpoint | None:
    """The newest checkpoint in `directory`, if any; it must come from the same settings."""
    found = sorted(directory.glob(f"{PREFIX}*.pt"))
    if not found:
        return None
    state = torch.load(found[-1], map_location="cpu", weights_only=True)
    if state["identity"] != identity:
        raise BadInputError(
            f"checkpoint {found[-1]} was made with other settings; use a new modelVersion "
            "or remove the checkpoint"
        )
    early = state["early"]
    return Checkpoint(
        epoch=state["epoch"],
        identity=state["identity"],
        trainable=state["trainable"],
        best_trainable=state["best_trainable"],
        optimizer=state["optimizer"],
        scheduler=state["scheduler"],
        rng=state["rng"],
        early=EarlyStopping(early["best"], early["best_epoch"], early["stale"], early["history"]),
        best_metrics=state["best_metrics"],
        global_step=state["global_step"],
        batch_size=state["batch_size"],
    )
