"""How often annotators kept a version's prelabels unchanged: the rollout's `prelabelAccuracy`.

`loop.rollout` rolls a version back when this share falls below `minPrelabelAccuracy`, but it
only judges what it is given; this is the measurement. An annotation reviews the prelabel its
task showed, the newest prediction (`consistency.reviews`); it accepted it when its labels
are the prediction's labels. Until a version has `MIN_REVIEWED` reviewed prelabels the
share is unknown (None), so a handful of early answers cannot roll a version back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.labelconfig import LabelSchema
from ..labelstudio.models import Task
from .consistency import reviews

MIN_REVIEWED = 20


@dataclass(frozen=True)
class Acceptance:
    accepted: int = 0
    reviewed: int = 0

    @property
    def share(self) -> float | None:
        return self.accepted / self.reviewed if self.reviewed else None

    def accuracy(self, min_reviewed: int = MIN_REVIEWED) -> float | None:
        """The share once enough prelabels were reviewed; None before."""
        return self.share if self.reviewed >= min_reviewed else None


def by_version(tasks: Iterable[Task], schema: LabelSchema) -> dict[str, Acceptance]:
    """Accepted and reviewed prelabels of every model version that prelabelled a task."""
    tallies: dict[str, tuple[int, int]] = {}
    for review in reviews(tasks, schema):
        version = review.prediction.model_version
        accepted, reviewed = tallies.get(version, (0, 0))
        tallies[version] = (accepted + review.accepted, reviewed + 1)
    return {version: Acceptance(a, r) for version, (a, r) in tallies.items()}


def published_accuracies(
    project: Mapping[str, Any] | None, min_reviewed: int = MIN_REVIEWED
) -> dict[str, float | None]:
    """Prelabel accuracy per version, from an AnnotationProject's `status.prelabels.acceptance`
    (where the operator publishes `by_version`); empty without one."""
    published = ((project or {}).get("status") or {}).get("prelabels") or {}
    return {
        str(entry["modelVersion"]): Acceptance(
            int(entry["accepted"]), int(entry["reviewed"])
        ).accuracy(min_reviewed)
        for entry in published.get("acceptance") or []
    }
