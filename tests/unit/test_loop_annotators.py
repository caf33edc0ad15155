"""Annotator accuracy, agreement and tiers: small tables, then DynaSent's real crowd labels."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from labelloop.api.annotationproject import Routing
from labelloop.loop.annotators import (
    MIN_COMPARED,
    AgreementSummary,
    Answer,
    TaskAgreement,
    TaskVotes,
    agreement,
    agreement_summary,
    consensus,
    mean_agreement,
    score_annotators,
    tier,
    votes_by_task,
)
from paths import SHARED_DATA

ROUTING = Routing(expert_min_accuracy=0.95, basic_max_accuracy=0.85)


def a(*labels: str) -> Answer:
    return frozenset(labels)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([], None),
        ([a("P")], None),  # one other annotator is no consensus
        ([a("P"), a("P")], a("P")),
        ([a("P"), a("N")], None),  # a tie
        ([a("P"), a("P"), a("N")], a("P")),
        ([a("P", "N"), a("P", "N"), a("P")], a("P", "N")),  # multi-label answers as sets
    ],
)
def test_consensus(answers: list[Answer], expected: Answer | None) -> None:
    assert consensus(answers) == expected


@pytest.mark.parametrize(
    ("answers", "expected"),
    [([a("P")], None), ([a("P"), a("N")], 0.5), ([a("P")] * 4 + [a("N")], 0.8)],
)
def test_agreement(answers: list[Answer], expected: float | None) -> None:
    assert agreement(answers) == expected


@pytest.mark.parametrize(
    ("accuracy", "expected"),
    [
        (None, "unrated"),
        (1.0, "expert"),
        (0.95, "expert"),
        (0.94, "standard"),
        (0.85, "standard"),
        (0.8499, "basic"),
        (0.0, "basic"),
    ],
)
def test_tier(accuracy: float | None, expected: str) -> None:
    assert tier(accuracy, ROUTING) == expected


def test_leave_one_out_consensus_and_gold() -> None:
    # Three annotators on four tasks; "carl" disagrees once with the other two.
    rows = [
        (1, "ann", a("P")),
        (1, "bob", a("P")),
        (1, "carl", a("N")),
        (2, "ann", a("N")),
        (2, "bob", a("N")),
        (2, "carl", a("N")),
        (3, "ann", a("P")),
        (3, "bob", a("P")),
        (3, "carl", a("P")),
        # Task 4 is gold: everyone is measured against it, even a majority.
        (4, "ann", a("N")),
        (4, "bob", a("N")),
        (4, "carl", a("P")),
    ]
    scores = {s.annotator: s for s in score_annotators(votes_by_task(rows, {4: a("P")}), ROUTING)}
    # On task 1 the others of ann are split (bob P, carl N): no consensus, not compared.
    assert (scores["ann"].compared, scores["ann"].correct, scores["ann"].accuracy) == (3, 2, 0.6667)
    # carl is outvoted on task 1 but right on gold task 4.
    assert (scores["carl"].compared, scores["carl"].correct, scores["carl"].accuracy) == (
        4,
        3,
        0.75,
    )
    assert scores["ann"].tier == scores["carl"].tier == "basic"


def test_too_few_comparisons_stay_unrated() -> None:
    rows = [(t, who, a("P")) for t in range(MIN_COMPARED - 1) for who in ("x", "y", "z")]
    scores = score_annotators(votes_by_task(rows), ROUTING)
    assert {(s.accuracy, s.tier) for s in scores} == {(None, "unrated")}
    assert [s.annotations for s in scores] == [MIN_COMPARED - 1] * 3


def test_an_annotators_later_answer_replaces_the_earlier_one() -> None:
    votes = votes_by_task([(1, "x", a("P")), (1, "x", a("N"))])
    assert votes == [TaskVotes(1, {"x": a("N")})]


def test_mean_agreement_skips_single_annotations() -> None:
    votes = votes_by_task([(1, "x", a("P")), (2, "x", a("P")), (2, "y", a("N"))])
    assert mean_agreement(votes) == 0.5
    assert mean_agreement([]) is None


def votes(*tasks: tuple[int, list[str]]) -> list[TaskVotes]:
    """Tasks with one annotator per listed label: (task id, [label of each annotator])."""
    return [TaskVotes(t, {f"u{i}": a(label) for i, label in enumerate(ls)}) for t, ls in tasks]


@pytest.mark.parametrize(
    ("tasks", "listed", "expected"),
    [
        ([], 10, AgreementSummary(0, 0, 0, 0, ())),
        # A task with one annotator has no agreement and is left out.
        (votes((1, ["P"])), 10, AgreementSummary(0, 0, 0, 0, ())),
        (
            votes((1, ["P", "P"]), (2, ["P", "N"]), (3, ["P", "P", "N"]), (4, ["P"])),
            10,
            AgreementSummary(
                3,
                unanimous=1,
                majority=1,
                split=1,
                lowest=(
                    TaskAgreement(2, 0.5, 2),
                    TaskAgreement(3, 0.6667, 3),
                    TaskAgreement(1, 1.0, 2),
                ),
            ),
        ),
        # Ties go to the lower task id; `listed` caps the list, not the counts.
        (
            votes((9, ["P", "N", "M"]), (5, ["P", "N", "M"]), (7, ["N", "N", "N"])),
            1,
            AgreementSummary(3, 1, 0, 2, (TaskAgreement(5, 0.3333, 3),)),
        ),
    ],
)
def test_agreement_summary(tasks: list[TaskVotes], listed: int, expected: AgreementSummary) -> None:
    assert agreement_summary(tasks, listed) == expected


# DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021), CC BY 4.0: five crowd workers per
# sentence, each worker's label in `label_distribution` (label -> worker ids).
def dynasent_votes(limit: int) -> list[TaskVotes]:
    rows: list[tuple[int, str, Answer]] = []
    with SHARED_DATA.open() as lines:
        for task_id, line in enumerate(lines):
            if task_id >= limit:
                break
            record = json.loads(line)
            for label, workers in record["label_distribution"].items():
                rows.extend((task_id, worker, a(label)) for worker in workers)
    return votes_by_task(rows)


def test_dynasent_crowd_gives_a_spread_of_tiers() -> None:
    votes = dynasent_votes(2438)
    scores = score_annotators(votes, ROUTING)
    tiers = Counter(s.tier for s in scores)
    rated = [s for s in scores if s.accuracy is not None]
    # Real crowd work: most workers are rated, and they are not all alike.
    assert len(rated) > 0.5 * len(scores)
    assert tiers["expert"] > 0 and tiers["basic"] > 0 and tiers["standard"] > 0
    # The busiest worker agrees with the others' consensus on most, not all, sentences.
    busiest = max(rated, key=lambda s: s.compared)
    assert busiest.compared >= 50 and 0.5 < (busiest.accuracy or 0) < 1
    # Five votes per sentence, majority at least three of them (the gold label's definition).
    agreement_ = mean_agreement(votes)
    assert agreement_ is not None and 0.6 < agreement_ < 0.95
    assert all(sum(len(ans) for ans in t.answers.values()) == 5 for t in votes)
    # Every sentence of this split has a gold label, so a majority: none is split; the least
    # agreed are those where one of the five dissented, listed by task id.
    summary = agreement_summary(votes)
    assert (summary.tasks, summary.split) == (len(votes), 0)
    assert summary.unanimous + summary.majority == len(votes) and summary.unanimous > 0
    low = min(a for t in votes if (a := agreement(t.answers.values())) is not None)
    assert [t.agreement for t in summary.lowest] == [low] * 10
    assert [t.task_id for t in summary.lowest] == sorted(t.task_id for t in summary.lowest)
