"""Which unlabelled tasks to prelabel and annotate first: active-learning order.

The prelabel server answers each task with a confidence `score` and, for classification, the
probability of every label. A task is worth a person's time when the model is unsure of it:

- `uncertainty`: least confident first (`1 - score`, the top label's probability);
- `margin`: smallest gap between the two most probable labels first;
- `entropy`: highest entropy of the label distribution first;
- `random`: a seeded shuffle, the baseline the others are measured against.

Margin and entropy need the distribution. A prediction without one (span labelling, or a
server that sends only `score`) is ranked by its score for every strategy but `random`, so a
mixed set still comes out in a sensible order instead of failing. Ties go to the lower task
id, so the order is a pure function of its inputs: the operator and the local runner, asked
twice, pick the same tasks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

from ..api.annotationproject import ActiveLearningStrategy as Strategy

STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


@dataclass(frozen=True)
class Candidate:
    """An unlabelled task with its prelabel: the confidence and, if known, every label's
    probability."""

    task_id: int
    score: float
    probabilities: Mapping[str, float] | None = None


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
    candidates: Sequence[Candidate], strategy: Strategy, batch_size: int, seed: int = 0
) -> list[int]:
    """The `batch_size` task ids to work on next, in the order `rank` gives."""
    return rank(candidates, strategy, seed)[:batch_size]
