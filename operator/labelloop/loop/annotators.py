"""Annotator accuracy, per-task agreement and routing tiers, from overlapping annotations.

Label Studio's open-source edition has no annotator performance or agreement reports (those are
Enterprise features), so labelloop measures them itself:

- A task's gold answer, where it carries one, is the reference for everyone who labelled it.
- Otherwise an annotator is compared with the consensus of the *other* annotators of the task:
  their most frequent answer, when it is unique and at least `MIN_OTHERS` of them answered.
  Leaving the annotator out keeps a lone expert from being outvoted by their own answer and
  keeps a careless annotator from agreeing with themselves.
- Accuracy is the share of compared tasks answered like the reference; below `MIN_COMPARED`
  comparisons it stays unset and the tier is `unrated` — a tier on two tasks would be noise.
- Tiers follow `spec.annotators.routing`: expert at or above `expertMinAccuracy`, basic below
  `basicMaxAccuracy`, standard between.
- A task's agreement is the share of its annotators who gave its most frequent answer; the
  project's mean hides where annotators disagree, so `agreement_summary` also sorts tasks into
  unanimous, majority and split ones and names the least agreed, for a reviewer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from ..api.annotationproject import Routing
from ..api.labelconfig import LabelSchema
from ..labelstudio.models import Task
from . import counting

Answer = frozenset[str]
Tier = Literal["expert", "standard", "basic", "unrated"]
TIERS: tuple[Tier, ...] = get_args(Tier)

MIN_OTHERS = 2
MIN_COMPARED = 3
# Tasks named in the agreement summary: enough for a review session, short enough for status.
LOWEST_LISTED = 10
# The task data field that holds a gold task's answer (a label, or a list of labels).
GOLD_FIELD = "gold"


@dataclass(frozen=True)
class TaskVotes:
    """Who answered what on one task (an answer is the set of labels given)."""

    task_id: int
    answers: Mapping[str, Answer]
    gold: Answer | None = None


@dataclass(frozen=True)
class AnnotatorScore:
    annotator: str
    annotations: int
    compared: int
    correct: int
    accuracy: float | None
    tier: Tier


def consensus(answers: Iterable[Answer]) -> Answer | None:
    """The unique most frequent answer of at least `MIN_OTHERS` annotators, else None."""
    counts = Counter(answers)
    if sum(counts.values()) < MIN_OTHERS:
        return None
    ranked = counts.most_common(2)
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return None
    return ranked[0][0]


def agreement(answers: Iterable[Answer]) -> float | None:
    """Share of annotators who gave the most frequent answer; None below two annotators."""
    counts = Counter(answers)
    total = sum(counts.values())
    if total < 2:
        return None
    return counts.most_common(1)[0][1] / total


def tier(accuracy: float | None, routing: Routing) -> Tier:
    if accuracy is None:
        return "unrated"
    if accuracy >= routing.expert_min_accuracy:
        return "expert"
    if accuracy < routing.basic_max_accuracy:
        return "basic"
    return "standard"


def score_annotators(tasks: Iterable[TaskVotes], routing: Routing) -> list[AnnotatorScore]:
    """Every annotator's accuracy and tier, sorted by annotator."""
    annotations: Counter[str] = Counter()
    compared: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for task in tasks:
        for annotator, answer in task.answers.items():
            annotations[annotator] += 1
            reference = task.gold
            if reference is None:
                others = (a for who, a in task.answers.items() if who != annotator)
                reference = consensus(others)
            if reference is None:
                continue
            compared[annotator] += 1
            correct[annotator] += answer == reference
    scores = []
    for annotator in sorted(annotations):
        n = compared[annotator]
        accuracy = round(correct[annotator] / n, 4) if n >= MIN_COMPARED else None
        scores.append(
            AnnotatorScore(
                annotator=annotator,
                annotations=annotations[annotator],
                compared=n,
                correct=correct[annotator],
                accuracy=accuracy,
                tier=tier(accuracy, routing),
            )
        )
    return scores


@dataclass(frozen=True)
class TaskAgreement:
    task_id: int
    agreement: float
    annotators: int


@dataclass(frozen=True)
class AgreementSummary:
    """Tasks with two or more annotators, by how far they agree."""

    tasks: int
    unanimous: int
    """Agreement 1: everyone gave the same answer."""
    majority: int
    """Agreement above one half, below 1."""
    split: int
    """Agreement of one half or less: no answer won most annotators."""
    lowest: tuple[TaskAgreement, ...]
    """Up to `LOWEST_LISTED` tasks, lowest agreement first, ties by task id."""


def agreement_summary(tasks: Iterable[TaskVotes], listed: int = LOWEST_LISTED) -> AgreementSummary:
    """How per-task agreement spreads, and the `listed` least agreed tasks."""
    rated = [
        TaskAgreement(t.task_id, round(a, 4), len(t.answers))
        for t in tasks
        if (a := agreement(t.answers.values())) is not None
    ]
    unanimous = sum(r.agreement == 1 for r in rated)
    split = sum(r.agreement <= 0.5 for r in rated)
    lowest = sorted(rated, key=lambda r: (r.agreement, r.task_id))[:listed]
    return AgreementSummary(
        tasks=len(rated),
        unanimous=unanimous,
        majority=len(rated) - unanimous - split,
        split=split,
        lowest=tuple(lowest),
    )


def mean_agreement(tasks: Iterable[TaskVotes]) -> float | None:
    """Mean per-task agreement over tasks with two or more annotators."""
    values = [a for t in tasks if (a := agreement(t.answers.values())) is not None]
    return round(sum(values) / len(values), 4) if values else None


def votes_by_task(
    rows: Iterable[tuple[int, str, Answer]], gold: Mapping[int, Answer] | None = None
) -> list[TaskVotes]:
    """TaskVotes from (task id, annotator, answer) rows; an annotator's later row wins."""
    answers: dict[int, dict[str, Answer]] = defaultdict(dict)
    for task_id, annotator, answer in rows:
        answers[task_id][annotator] = answer
    gold = gold or {}
    return [TaskVotes(t, a, gold.get(t)) for t, a in sorted(answers.items())]


def votes_of_tasks(tasks: Iterable[Task], schema: LabelSchema) -> list[TaskVotes]:
    """Who answered what, per task; a task's `gold` data field, where set, is its gold answer."""
    rows = []
    gold: dict[int, Answer] = {}
    for task in tasks:
        given = task.data.get(GOLD_FIELD)
        if isinstance(given, str) and given:
            gold[task.id] = frozenset([given])
        elif isinstance(given, list) and given:
            gold[task.id] = frozenset(map(str, given))
        for annotation in task.annotations:
            if counting.counted(annotation) and annotation.completed_by is not None:
                answer = frozenset(counting.labels_of_result(schema, annotation.result))
                rows.append((task.id, str(annotation.completed_by), answer))
    return votes_by_task(rows, gold)
