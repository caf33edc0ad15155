"""Prelabels the operator pushes into Label Studio: which tasks still need one, and which go in.

Label Studio's own ML backend integration predicts a task when someone opens it, and keeps only
`result`, `score` and `model_version`. The operator instead asks the prelabel server for every
unlabelled task that holds no prediction of the active version yet, ranks the answers in
active-learning order (`active_learning.next_batch`) and imports the most informative batch.

Everything here is decided from what Label Studio holds now, so a pass that died after the
import but before writing status does no harm: the next pass finds those tasks predicted and
leaves them out. Answers of another version (a canary's pods answer too while a rollout is
under way) or without a usable score are not imported; their tasks stay pending and are asked
again on a later pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..labelstudio.models import MLBackend, Task
from .active_learning import Candidate
from .counting import counted

JSON = dict[str, Any]
# ML backends titled so are the operator's; others' backends of the project are left alone.
BACKEND_PREFIX = "labelloop: "


def backend_title(service: str) -> str:
    return f"{BACKEND_PREFIX}{service}"


@dataclass(frozen=True)
class BackendPlan:
    """What to do about the project's ML backends: one of ours, at the wanted URL, or none."""

    keep: int | None = None
    """Ours, already right (connected, at the URL, titled after the service)."""
    update: int | None = None
    """Ours, to be moved to the URL and title (Label Studio checks it again)."""
    create: bool = False
    delete: tuple[int, ...] = ()
    """Ours beyond the one kept or updated."""


def backend_plan(backends: Sequence[MLBackend], title: str, url: str | None) -> BackendPlan:
    """Exactly one backend of ours at `url` titled `title`; none when `url` is None.

    A backend Label Studio no longer counts as connected is updated, which makes Label Studio
    check it again, instead of being kept as it is.
    """
    ours = sorted((b for b in backends if b.title.startswith(BACKEND_PREFIX)), key=lambda b: b.id)
    if url is None:
        return BackendPlan(delete=tuple(b.id for b in ours))
    right = [b for b in ours if b.url.rstrip("/") == url.rstrip("/") and b.title == title]
    connected = [b for b in right if b.state == "CO"]
    if connected:
        kept = connected[0].id
        return BackendPlan(keep=kept, delete=tuple(b.id for b in ours if b.id != kept))
    if not ours:
        return BackendPlan(create=True)
    moved = (right or ours)[0].id
    return BackendPlan(update=moved, delete=tuple(b.id for b in ours if b.id != moved))


def unlabelled(task: Task) -> bool:
    """No counted annotation: a skipped task is still waiting for a label."""
    return not any(counted(a) for a in task.annotations)


def needing_prediction(tasks: Iterable[Task], version: str) -> list[Task]:
    """Unlabelled tasks without a prediction of `version`, by task id."""
    return sorted(
        (
            t
            for t in tasks
            if unlabelled(t) and not any(p.model_version == version for p in t.predictions)
        ),
        key=lambda t: t.id,
    )


def predicted(tasks: Iterable[Task], version: str) -> int:
    """How many unlabelled tasks hold a prediction of `version`."""
    return sum(
        unlabelled(t) and any(p.model_version == version for p in t.predictions) for t in tasks
    )


@dataclass(frozen=True)
class Ranked:
    """The server's answers sorted into what can be ranked and what cannot."""

    candidates: tuple[Candidate, ...]
    unusable: tuple[int, ...]
    """Task ids whose answer was of another version or lacked a result or a score in [0, 1]."""


def rank_inputs(answers: Mapping[int, JSON], version: str) -> Ranked:
    """Candidates from the server's answer to each task id, for `active_learning.next_batch`."""
    candidates = []
    unusable = []
    for task_id in sorted(answers):
        answer = answers[task_id]
        score = _number(answer.get("score"))
        usable = (
            answer.get("model_version") == version
            and isinstance(answer.get("result"), list)
            and score is not None
            and 0.0 <= score <= 1.0
        )
        if score is None or not usable:
            unusable.append(task_id)
            continue
        candidates.append(Candidate(task_id, score, _probabilities(answer)))
    return Ranked(tuple(candidates), tuple(unusable))


def to_import(chosen: Sequence[int], answers: Mapping[int, JSON]) -> list[JSON]:
    """The predictions of `chosen` tasks as `LabelStudioClient.import_predictions` takes them."""
    return [
        {
            "task": task_id,
            "result": answers[task_id]["result"],
            "score": float(answers[task_id]["score"]),
            "model_version": answers[task_id]["model_version"],
        }
        for task_id in chosen
    ]


def _number(value: object) -> float | None:
    """A finite JSON number as a float; None for anything else (a bool is no number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _probabilities(answer: JSON) -> dict[str, float] | None:
    """Every label's probability, when the server sent a well-formed distribution."""
    given = answer.get("probabilities")
    if not isinstance(given, dict) or not given:
        return None
    values = {str(k): _number(v) for k, v in given.items()}
    if any(v is None or v < 0 for v in values.values()):
        return None
    return {k: v for k, v in values.items() if v is not None}
