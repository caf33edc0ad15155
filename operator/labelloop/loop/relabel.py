"""Relabel suspects: labelled tasks whose answer deserves an expert's second look.

A wrong label teaches the model the wrong thing, and every round trains on it again. Two
signals point at one, either enough:

- the model contradicts it: the task's newest prelabel is confident (its score at least
  the consistency threshold) and the task's answer differs (`consistency.disagreements`);
- its annotators split: with two or more of them, no answer won more than half
  (`annotators.agreement`).

The queue is those tasks, once each, for the Data Manager view `labelloop: relabel suspects`
(the first `MAX_LISTED`), which experts work through; status counts them by signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..api.labelconfig import LabelSchema
from ..labelstudio.models import Task
from . import annotators, consistency, routing

MAX_LISTED = consistency.MAX_LISTED


@dataclass(frozen=True)
class RelabelQueue:
    """The suspect tasks, and how many each signal found (a task may have both)."""

    task_ids: tuple[int, ...]
    """Every suspect task, by id."""
    contradicted: int
    """Tasks whose answer a confident prelabel contradicts."""
    split: int
    """Tasks whose annotators split."""


def relabel_queue(tasks: Sequence[Task], schema: LabelSchema, min_score: float) -> RelabelQueue:
    """The suspects among `tasks`; `min_score` is where a prelabel counts as confident."""
    contradicted = {d.task_id for d in consistency.disagreements(tasks, schema, min_score)}
    split = {
        votes.task_id
        for votes in annotators.votes_of_tasks(tasks, schema)
        if (agreed := annotators.agreement(votes.answers.values())) is not None and agreed <= 0.5
    }
    return RelabelQueue(tuple(sorted(contradicted | split)), len(contradicted), len(split))


def queue_filter(queue: RelabelQueue) -> dict[str, Any]:
    """Data Manager filters selecting the first `MAX_LISTED` suspects."""
    return routing.tasks_filter(queue.task_ids[:MAX_LISTED])
