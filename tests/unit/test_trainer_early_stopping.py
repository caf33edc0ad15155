"""Which epoch a run keeps and when it stops (`checkpoints.EarlyStopping`), given each
epoch's held-out score and the score's chance variation (`scores.sampling_noise`)."""

from __future__ import annotations

import math

import pytest

from labelloop_trainer.training import scores
from labelloop_trainer.training.checkpoints import EarlyStopping

PATIENCE = 3

CASES: list[tuple[str, list[float], bool, float, int, int]] = [
    # name, scores by epoch, higher is better, tolerance, epoch kept, epochs run
    (
        # A first round's 37 held-out annotations (demo, seed 1): epoch 1 was luckiest, and
        # the classic rule stopped after epoch 4 and kept it; its prelabels scored 0.43.
        "a lucky first epoch does not end the run: later ones within the noise go on",
        [0.504, 0.438, 0.491, 0.471, 0.52, 0.50], True, 0.082, 5, 6,
    ),
    (
        "the classic rule on the same scores: the first epoch, stopped after the fourth",
        [0.504, 0.438, 0.491, 0.471, 0.52, 0.50], True, 0.0, 1, 4,
    ),
    (
        "a clear fall stops the run after the patience",
        [0.50, 0.60, 0.62, 0.50, 0.49, 0.48, 0.70], True, 0.045, 3, 6,
    ),
    (
        "an evaluation within the noise resets the count",
        [0.70, 0.60, 0.60, 0.68, 0.60, 0.60, 0.60, 0.90], True, 0.05, 1, 7,
    ),
    (
        "a loss without tolerance: every loss not lower counts",
        [1.0, 0.9, 0.9, 0.95, 0.91], False, 0.0, 2, 5,
    ),
    (
        "a loss with a tolerance: a slightly higher loss resets the count",
        [1.0, 0.9, 0.92, 1.2, 1.3, 1.4, 0.5], False, 0.05, 2, 6,
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "higher", "tolerance", "kept", "epochs_run"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_epoch_kept_and_stop(
    values: list[float], higher: bool, tolerance: float, kept: int, epochs_run: int
) -> None:
    early = EarlyStopping()
    run = 0
    for epoch, value in enumerate(values, start=1):
        run = epoch
        early.update(value, epoch, higher, tolerance)
        if early.stale >= PATIENCE:
            break
    assert (early.best_epoch, run) == (kept, epochs_run)
    assert early.best == (max if higher else min)(values[:run])


@pytest.mark.parametrize(
    ("name", "examples", "noise"),
    [("f1", 40, 0.5 / math.sqrt(40)), ("macro_f1", 121, 0.5 / 11), ("accuracy", 500,
     0.5 / math.sqrt(500)), ("eval_loss", 121, 0.0), ("my.metrics:kappa", 121, 0.0),
     ("f1", 0, 0.0)],
)  # fmt: skip
def test_sampling_noise(name: str, examples: int, noise: float) -> None:
    assert scores.sampling_noise(name, examples) == pytest.approx(noise)
