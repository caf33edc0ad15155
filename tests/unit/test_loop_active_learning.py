"""Active-learning order: table-driven cases for each strategy."""

from __future__ import annotations

import pytest

from labelloop.loop.active_learning import Candidate, informativeness, next_batch, rank

# Task 1: confident. Task 2: a close call between two labels. Task 3: spread over three.
CONFIDENT = Candidate(1, 0.90, {"Positive": 0.90, "Negative": 0.06, "Neutral": 0.04})
CLOSE_CALL = Candidate(2, 0.48, {"Positive": 0.48, "Negative": 0.47, "Neutral": 0.05})
SPREAD = Candidate(3, 0.40, {"Positive": 0.40, "Negative": 0.30, "Neutral": 0.30})
CANDIDATES = [CONFIDENT, CLOSE_CALL, SPREAD]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # least confident first: 0.40 < 0.48 < 0.90
        ("uncertainty", [3, 2, 1]),
        # smallest gap between the top two first: 0.01 < 0.10 < 0.84
        ("margin", [2, 3, 1]),
        # the flattest distribution first
        ("entropy", [3, 2, 1]),
    ],
)
def test_each_strategy_orders_by_its_measure(strategy: str, expected: list[int]) -> None:
    assert rank(CANDIDATES, strategy) == expected  # type: ignore[arg-type]


def test_without_a_distribution_margin_and_entropy_fall_back_to_the_score() -> None:
    spans = [Candidate(7, 0.95), Candidate(5, 0.30), Candidate(6, 0.60)]
    for strategy in ("uncertainty", "margin", "entropy"):
        assert rank(spans, strategy) == [5, 6, 7]


def test_ties_go_to_the_lower_task_id() -> None:
    tied = [Candidate(9, 0.5), Candidate(4, 0.5), Candidate(6, 0.5)]
    assert rank(tied, "uncertainty") == [4, 6, 9]


def test_random_is_a_seeded_shuffle_of_all_tasks() -> None:
    many = [Candidate(i, 0.5) for i in range(50)]
    first = rank(many, "random", seed=1)
    assert first == rank(list(reversed(many)), "random", seed=1)
    assert first != rank(many, "random", seed=2)
    assert sorted(first) == list(range(50))
    assert first != list(range(50))


@pytest.mark.parametrize(
    ("candidate", "strategy", "expected"),
    [
        (Candidate(1, 0.5, {"a": 0.5, "b": 0.5}), "margin", 1.0),
        (Candidate(1, 0.5, {"a": 0.5, "b": 0.5}), "entropy", 1.0),
        (Candidate(1, 1.0, {"a": 1.0, "b": 0.0}), "entropy", 0.0),
        (Candidate(1, 1.0, {"a": 1.0, "b": 0.0}), "margin", 0.0),
        (Candidate(1, 0.7), "uncertainty", 0.3),
    ],
)
def test_measures_lie_between_zero_and_one(
    candidate: Candidate, strategy: str, expected: float
) -> None:
    assert informativeness(candidate, strategy) == pytest.approx(expected)  # type: ignore[arg-type]


def test_next_batch_takes_the_head_of_the_order() -> None:
    assert next_batch(CANDIDATES, "margin", 2) == [2, 3]
    assert next_batch(CANDIDATES, "uncertainty", 10) == [3, 2, 1]


def test_an_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="strategy: 'greedy' is not one of uncertainty"):
        rank(CANDIDATES, "greedy")  # type: ignore[arg-type]
