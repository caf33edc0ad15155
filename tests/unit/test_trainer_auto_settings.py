"""`batchSize: auto` before memory is asked (enough optimiser steps per epoch first), and
`epochs: auto` (enough optimiser steps in all)."""

from __future__ import annotations

import pytest

from labelloop_trainer.training.loop import (
    MAX_AUTO_EPOCHS,
    MIN_AUTO_STEPS,
    MIN_STEPS_PER_EPOCH,
    auto_epochs,
    steps_cap,
)

CASES: list[tuple[str, int, int, int, bool, int]] = [
    # name, training examples, processes, accumulation, gpu, cap
    ("a first round's 160 labels: the floor", 160, 1, 1, False, 4),
    ("480 labels", 480, 1, 1, False, 8),
    ("all of DynaSent on a CPU: at most 16", 1950, 1, 1, False, 16),
    ("all of DynaSent on a GPU: steps decide", 1950, 1, 1, True, 32),
    ("11,539 tweets on a GPU: not 1,024", 11539, 1, 1, True, 128),
    ("the same split over 4 GPUs", 11539, 4, 1, True, 32),
    ("accumulation counts towards a step", 11539, 1, 4, True, 32),
    ("a million rows: memory's cap", 1_000_000, 1, 1, True, 1024),
]  # fmt: skip


@pytest.mark.parametrize(
    ("examples", "world", "accumulation", "gpu", "cap"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_steps_cap(examples: int, world: int, accumulation: int, gpu: bool, cap: int) -> None:
    assert steps_cap(examples, world, accumulation, gpu) == cap


@pytest.mark.parametrize("examples", [400, 1950, 11539, 100_000])
def test_an_epoch_keeps_enough_steps_above_the_floor(examples: int) -> None:
    size = steps_cap(examples, 1, 1, gpu=True)
    assert size & (size - 1) == 0  # a power of two
    assert examples / size >= MIN_STEPS_PER_EPOCH or size == 4


EPOCH_CASES: list[tuple[str, int, int]] = [
    # name, optimiser steps per epoch, epochs
    ("a first round's 160 labels in batches of 4: the ceiling", 40, 10),
    ("480 labels in batches of 8", 60, 9),
    ("all of DynaSent on a CPU (batches of 16)", 122, 5),
    ("exactly enough steps in 4", 125, 4),
    ("11,539 tweets in batches of 128: the floor", 91, 6),
    ("a large data set: the floor", 10_000, 3),
    ("no step at all is still a run", 0, 10),
]  # fmt: skip


@pytest.mark.parametrize(
    ("steps_per_epoch", "epochs"),
    [c[1:] for c in EPOCH_CASES],
    ids=[c[0] for c in EPOCH_CASES],
)
def test_auto_epochs(steps_per_epoch: int, epochs: int) -> None:
    assert auto_epochs(steps_per_epoch) == epochs


@pytest.mark.parametrize("steps_per_epoch", range(1, 300, 7))
def test_auto_epochs_reach_the_steps_unless_capped(steps_per_epoch: int) -> None:
    epochs = auto_epochs(steps_per_epoch)
    assert epochs * steps_per_epoch >= MIN_AUTO_STEPS or epochs == MAX_AUTO_EPOCHS
    assert (epochs - 1) * steps_per_epoch < MIN_AUTO_STEPS or epochs == 3
