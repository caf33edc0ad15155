"""Which unlabelled tasks to prelabel and annotate first: active-learning order, and when to stop.

The prelabel server answers each task with a confidence `score` and, for classification, the
probability of every label. A task is worth a person's time when the model is unsure of it:

- `entropy` (the default): highest entropy of the label distribution first, the doubt over
  every label at once;
- `margin`: smallest gap between the two most probable labels first, the close calls
  between two labels;
- `uncertainty`: least confident first (`1 - score`, the top label's probability);
- `random`: a seeded shuffle, the baseline the others are measured against.

Margin and entropy need the distribution. A prediction without one (span labelling, or a
server that sends only `score`) is ranked by its score for every strategy but `random`, so a
mixed set still comes out in a sensible order instead of failing. Ties go to the lower task
id, so the order is a pure function of its inputs: the operator and the local runner, asked
twice, pick the same tasks.

A batch (`next_batch`) is the head of that order, with two rules on top:

- cold start: while no fine-tuned version serves (round 0: the base model's zero-shot
  prelabels, or none), the batch is a seeded random sample. A zero-shot model's doubt says
  little about what a fine-tuned one needs, and its most doubtful tasks are not a picture of
  the data, which the first training set should be;
- diversity: when the candidates carry embeddings, the batch is the most informative task of
  each of `batch_size` clusters (seeded k-means) of the `DIVERSITY_POOL * batch_size` most
  informative ones, so one batch is not many near-copies of one hard sentence.

When to stop (`stopping_signal`, after Bloodgood and Vijay-Shanker's stabilising
predictions): once consecutive versions agree on nearly every unlabelled task (Cohen's kappa
of their labels at least `stability.agreement` over the last `stability.versionChanges`
version changes), further labels are changing few predictions.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

from ..api.annotationproject import ActiveLearningStrategy as Strategy
from ..api.annotationproject import Stability

STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
DIVERSITY_POOL = 4
"""Clusters are drawn among this many times `batch_size` of the most informative tasks."""
KMEANS_ITERATIONS = 8


@dataclass(frozen=True)
class Candidate:
    """An unlabelled task with its prelabel: the confidence and, if known, every label's
    probability and an embedding of its text."""

    task_id: int
    score: float
    probabilities: Mapping[str, float] | None = None
    embedding: Sequence[float] | None = None


def informativeness(candidate: Candidate, strategy: Strategy) -> float:
    """How much annotating the task should teach the model; higher comes first.

    Every measure lies in [0, 1] for two labels, grows with the model's doubt, and is the
    same transform of `score` when the distribution is unknown, so candidates with and without
    one compare on one scale (`random` is not a measure: see `rank`).
    """
    probabilities = sorted((candidate.probabilities or {}).values(), reverse=True)
    if strategy == "margin" and len(probabilities) >= 2:
        return 1.0 - (probabilities[0] - probabilities[1])
    if strategy == "entropy" and len(probabilities) >= 2:
        entropy = -sum(p * math.log(p) for p in probabilities if p > 0)
        return entropy / math.log(len(probabilities))
    return 1.0 - candidate.score


def rank(candidates: Sequence[Candidate], strategy: Strategy, seed: int = 0) -> list[int]:
    """The candidates' task ids, the most informative first.

    `random` shuffles with `seed` (the same seed gives the same order).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    ids = sorted(c.task_id for c in candidates)
    if strategy == "random":
        random.Random(seed).shuffle(ids)
        return ids
    by_id = {c.task_id: c for c in candidates}
    return sorted(ids, key=lambda i: -informativeness(by_id[i], strategy))


def next_batch(
    candidates: Sequence[Candidate],
    strategy: Strategy,
    batch_size: int,
    seed: int = 0,
    *,
    cold_start: bool = False,
) -> list[int]:
    """The `batch_size` task ids to work on next, the most informative first (see the module
    docstring for the cold-start and diversity rules)."""
    order = rank(candidates, "random" if cold_start else strategy, seed)
    embedded = all(c.embedding is not None for c in candidates)
    if cold_start or strategy == "random" or not embedded or len(order) <= batch_size:
        return order[:batch_size]
    by_id = {c.task_id: c for c in candidates}
    pool = order[: DIVERSITY_POOL * batch_size]
    clusters = kmeans([list(by_id[i].embedding or ()) for i in pool], batch_size, seed)
    picked: dict[int, int] = {}
    for task_id, cluster in zip(pool, clusters, strict=True):
        picked.setdefault(cluster, task_id)  # the pool is in order: the first is the best
    chosen = set(picked.values())
    ordered = [i for i in pool if i in chosen]
    return (ordered + [i for i in order if i not in chosen])[:batch_size]


def kmeans(points: Sequence[Sequence[float]], k: int, seed: int) -> list[int]:
    """Each point's cluster among `k`, by Lloyd's iterations from a seeded k-means++ start."""
    rng = random.Random(seed)
    centres = [list(points[rng.randrange(len(points))])]
    nearest = [math.dist(p, centres[0]) ** 2 for p in points]
    while len(centres) < min(k, len(points)):
        total = sum(nearest)
        if total == 0:
            break  # every point sits on a centre already
        threshold, running, chosen = rng.random() * total, 0.0, len(points) - 1
        for i, weight in enumerate(nearest):
            running += weight
            if running >= threshold:
                chosen = i
                break
        centres.append(list(points[chosen]))
        nearest = [
            min(d, math.dist(p, centres[-1]) ** 2) for d, p in zip(nearest, points, strict=True)
        ]
    assignment: list[int] = []
    for _ in range(KMEANS_ITERATIONS):
        updated = [min(range(len(centres)), key=lambda c: math.dist(p, centres[c])) for p in points]
        if updated == assignment:
            break
        assignment = updated
        for c in range(len(centres)):
            members = [points[i] for i, a in enumerate(assignment) if a == c]
            if members:
                centres[c] = [sum(column) / len(members) for column in zip(*members, strict=True)]
    return assignment


# --- when to stop ------------------------------------------------------------------------


def prediction_agreement(before: Mapping[int, str], after: Mapping[int, str]) -> float | None:
    """Cohen's kappa between two versions' labels on the tasks both labelled; None with no
    task in common. 1 is full agreement; 0 is what chance alone would give."""
    shared = sorted(before.keys() & after.keys())
    if not shared:
        return None
    n = len(shared)
    observed = sum(before[i] == after[i] for i in shared) / n
    first = Counter(before[i] for i in shared)
    second = Counter(after[i] for i in shared)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


@dataclass(frozen=True)
class StoppingSignal:
    """Whether further labels still change the model's predictions."""

    agreement: float | None
    """Kappa between the last two versions on the unlabelled tasks (None before two)."""
    stable: bool
    """The last `rule.version_changes` version changes all agreed at `rule.agreement` or
    more."""
    message: str


def stopping_signal(agreements: Sequence[float], rule: Stability) -> StoppingSignal:
    """The signal from the kappas of each version change so far, oldest first."""
    if not agreements:
        return StoppingSignal(None, False, "no two versions to compare yet")
    latest = agreements[-1]
    recent = agreements[-rule.version_changes :]
    stable = len(recent) == rule.version_changes and min(recent) >= rule.agreement
    if stable:
        message = (
            f"predictions are stable: the last {rule.version_changes} version changes agreed "
            f"on the unlabelled tasks at kappa >= {rule.agreement} (now {latest:.3f}); "
            "further labels are changing few predictions"
        )
    else:
        message = (
            f"predictions still change: kappa {latest:.3f} between the last two versions "
            f"(stable at >= {rule.agreement} for {rule.version_changes} version changes)"
        )
    return StoppingSignal(latest, stable, message)
