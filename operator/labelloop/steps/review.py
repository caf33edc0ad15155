"""The Data Manager views labelloop keeps: one per annotator tier (tasks by prelabel score),
one of the annotations that contradict a confident prelabel, and the relabel suspects for
experts (`loop.relabel`).

All rest on predictions, so a project without any gets no views, disagreements or suspects.
Views of other people are left alone; ours are found by title.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..api.annotationproject import AnnotationProjectSpec, Consistency
from ..api.labelconfig import LabelSchema
from ..labelstudio.client import LabelStudioClient
from ..labelstudio.models import Task
from ..loop import consistency, relabel, routing


@dataclass(frozen=True)
class Review:
    """What the review step found."""

    disagreements: list[consistency.Disagreement] | None
    """Every disagreement with a confident prelabel, when `spec.quality.consistency` is
    enabled; None when it is not."""
    relabel: relabel.RelabelQueue
    """Tasks worth an expert's second look (confident at `consistency.minScore`, or its
    default when the check is off)."""


def ensure_views(
    ls: LabelStudioClient, project_id: int, wanted: Sequence[routing.ViewSpec]
) -> None:
    """Data Manager tabs titled as `wanted`, with its filters; others' tabs are left alone."""
    present = {v.title: v for v in ls.list_views(project_id)}
    for view in wanted:
        found = present.get(view.title)
        if found is None:
            ls.create_view(project_id, view.title, view.filters)
        elif found.filters != view.filters:
            ls.update_view(found.id, project_id, view.title, view.filters)


def review(
    ls: LabelStudioClient,
    project_id: int,
    spec: AnnotationProjectSpec,
    *,
    tasks: Sequence[Task],
    schema: LabelSchema,
) -> Review | None:
    """Disagreements with confident prelabels, relabel suspects and the views; None without
    predictions."""
    if not any(t.predictions for t in tasks):
        return None
    views = routing.tier_views()
    check = spec.quality.consistency if spec.quality is not None else None
    found = None
    if check is not None and check.enabled:
        found = consistency.disagreements(tasks, schema, check.min_score)
        views.append(routing.ViewSpec(routing.REVIEW_VIEW, consistency.review_filter(found)))
    suspects = relabel.relabel_queue(tasks, schema, (check or Consistency()).min_score)
    views.append(routing.ViewSpec(routing.RELABEL_VIEW, relabel.queue_filter(suspects)))
    ensure_views(ls, project_id, views)
    return Review(found, suspects)
