"""Active-learning order: table-driven cases for each strategy."""

from __future__ import annotations

import pytest

from labelloop.api.annotationproject import Stability
from labelloop.loop.active_learning import (
    Candidate,
    informativeness,
    kmeans,
    next_batch,
    prediction_agreement,
    rank,
    stopping_signal,
)

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


def test_entropy_is_the_default_strategy() -> None:
    """The strategy that saved the most labels in `make bench-al`."""
    from labelloop.api.annotationproject import ActiveLearning

    assert ActiveLearning().strategy == "entropy"


# --- batches: cold start and diversity -----------------------------------------------------

# Five close calls that are near-copies of one sentence (embeddings about (1, 0)), and two
# slightly less doubtful tasks elsewhere (about (0, 1)).
NEAR_COPIES = [
    Candidate(i, 0.5, {"a": 0.5, "b": 0.49 - i / 1000, "c": 0.01}, (1.0, i / 100))
    for i in range(1, 6)
]
ELSEWHERE = [
    Candidate(10, 0.6, {"a": 0.6, "b": 0.38, "c": 0.02}, (0.0, 1.0)),
    Candidate(11, 0.7, {"a": 0.7, "b": 0.28, "c": 0.02}, (0.05, 1.0)),
]


def test_without_embeddings_the_batch_is_the_head_of_the_order() -> None:
    plain = [Candidate(c.task_id, c.score, c.probabilities) for c in NEAR_COPIES + ELSEWHERE]
    assert next_batch(plain, "margin", 2) == [1, 2]


def test_with_embeddings_a_batch_takes_the_best_of_each_cluster() -> None:
    assert next_batch(NEAR_COPIES + ELSEWHERE, "margin", 2) == [1, 10]


def test_a_diverse_batch_is_full_and_in_informativeness_order() -> None:
    batch = next_batch(NEAR_COPIES + ELSEWHERE, "margin", 4, seed=3)
    assert len(set(batch)) == 4
    assert {1, 10} <= set(batch)  # both places
    order = rank(NEAR_COPIES + ELSEWHERE, "margin")
    assert sorted(batch, key=order.index) == batch


def test_cold_start_is_a_seeded_random_sample_whatever_the_scores() -> None:
    many = [Candidate(i, i / 100, {"a": i / 100, "b": 1 - i / 100}) for i in range(100)]
    first = next_batch(many, "margin", 10, seed=5, cold_start=True)
    assert first == next_batch(list(reversed(many)), "margin", 10, seed=5, cold_start=True)
    assert first != next_batch(many, "margin", 10)  # not the closest calls
    assert first == rank(many, "random", seed=5)[:10]


def test_kmeans_separates_clear_clusters_and_is_seeded() -> None:
    points = [(0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (5.0, 5.0), (5.1, 5.0), (5.0, 5.1)]
    found = kmeans(points, 2, seed=1)
    assert found[:3] == [found[0]] * 3 and found[3:] == [found[3]] * 3
    assert found[0] != found[3]
    assert kmeans(points, 2, seed=1) == found
    assert kmeans([(1.0, 1.0)] * 4, 3, seed=0) == [0, 0, 0, 0]  # duplicates: one centre


# --- when to stop --------------------------------------------------------------------------

AGREEMENT_CASES: list[tuple[str, dict[int, str], dict[int, str], float | None]] = [
    ("identical", {1: "a", 2: "b", 3: "a"}, {1: "a", 2: "b", 3: "a"}, 1.0),
    ("opposite", {1: "a", 2: "b"}, {1: "b", 2: "a"}, -1.0),
    ("chance level", {1: "a", 2: "a", 3: "b", 4: "b"}, {1: "a", 2: "b", 3: "a", 4: "b"}, 0.0),
    ("only shared tasks count", {1: "a", 2: "b", 9: "a"}, {1: "a", 2: "b", 8: "b"}, 1.0),
    ("nothing shared", {1: "a"}, {2: "a"}, None),
    ("one label everywhere, the same", {1: "a", 2: "a"}, {1: "a", 2: "a"}, 1.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "kappa"),
    [c[1:] for c in AGREEMENT_CASES],
    ids=[c[0] for c in AGREEMENT_CASES],
)
def test_prediction_agreement_is_cohens_kappa(
    before: dict[int, str], after: dict[int, str], kappa: float | None
) -> None:
    found = prediction_agreement(before, after)
    assert found == (None if kappa is None else pytest.approx(kappa))


STOP_CASES: list[tuple[str, list[float], bool, float | None]] = [
    ("no version change yet", [], False, None),
    ("stable, but not for long enough", [0.995, 0.999], False, 0.999),
    ("three stable changes in a row", [0.7, 0.991, 0.995, 0.999], True, 0.999),
    ("a late change resets it", [0.995, 0.999, 0.999, 0.95], False, 0.95),
]  # fmt: skip


@pytest.mark.parametrize(
    ("agreements", "stable", "latest"),
    [c[1:] for c in STOP_CASES],
    ids=[c[0] for c in STOP_CASES],
)
def test_stopping_signal(agreements: list[float], stable: bool, latest: float | None) -> None:
    """Stability's defaults: kappa 0.99 for three version changes in a row."""
    signal = stopping_signal(agreements, Stability())
    assert (signal.stable, signal.agreement) == (stable, latest)
    assert ("further labels are changing few predictions" in signal.message) is stable


def test_the_stopping_rule_is_the_specs() -> None:
    loose = Stability(agreement=0.9, version_changes=1)
    assert stopping_signal([0.95], loose).stable
    assert not stopping_signal([0.95], Stability()).stable
