"""plan_passes: how a CPU batch is split into forward passes of similar length."""

from __future__ import annotations

import itertools
import random

import pytest

from labelloop_trainer.serving.fast_path import plan_passes


def cost(lengths: list[int], passes: list[list[int]], pass_cost: int) -> int:
    return sum(pass_cost + len(rows) * max(lengths[i] for i in rows) for rows in passes)


@pytest.mark.parametrize(
    ("lengths", "pass_cost", "passes"),
    [
        ([], 16, []),
        ([20], 16, [[0]]),
        # Equal lengths are never split.
        ([20, 20, 20], 0, [[0, 1, 2]]),
        # Close lengths: one pass, padding costs less than a second pass.
        ([10, 12, 11], 16, [[0, 2, 1]]),
        # Far apart: two passes, shortest first, whatever the order they came in.
        ([60, 5, 60, 5], 16, [[1, 3], [0, 2]]),
        # The same rows with a dear pass: padding them all is cheaper.
        ([60, 5, 60, 5], 200, [[1, 3, 0, 2]]),
        # A batch of mixed lengths: the long outlier runs alone.
        ([10, 12, 15, 18, 22, 25, 30, 45], 16, [[0, 1, 2, 3], [4, 5, 6], [7]]),
        # Free passes: one a distinct length.
        ([3, 9, 3, 7], 0, [[0, 2], [3], [1]]),
    ],
)
def test_plans(lengths: list[int], pass_cost: int, passes: list[list[int]]) -> None:
    assert plan_passes(lengths, pass_cost) == passes


def cheapest_by_brute_force(lengths: list[int], pass_cost: int) -> int:
    """The least cost over every way to cut the rows, in length order, into passes."""
    ordered = sorted(lengths)
    best = None
    for cuts in itertools.product((False, True), repeat=len(ordered) - 1):
        total, size = 0, 1
        for i, cut in enumerate([*cuts, True]):
            if cut:
                total += pass_cost + size * ordered[i]
                size = 1
            else:
                size += 1
        best = total if best is None else min(best, total)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_plan_is_the_cheapest_and_runs_every_row_once(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(3, 70) for _ in range(rng.randint(1, 10))]
    pass_cost = rng.choice((0, 4, 16, 36))
    passes = plan_passes(lengths, pass_cost)
    assert sorted(i for rows in passes for i in rows) == list(range(len(lengths)))
    assert cost(lengths, passes, pass_cost) == cheapest_by_brute_force(lengths, pass_cost)
    longest = [max(lengths[i] for i in rows) for rows in passes]
    assert longest == sorted(longest)
