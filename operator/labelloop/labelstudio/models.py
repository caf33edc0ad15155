"""Small typed views of what Label Studio returns, holding only what labelloop reads.

The SDK hands back a mix of pydantic models (typed for Label Studio Enterprise) and plain dicts
(e.g. a listed task's annotations), with dates as `datetime` or as ISO strings; the views are
built from plain dicts so that callers see one shape whatever the SDK did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "Annotation",
    "MLBackend",
    "Prediction",
    "Project",
    "ProjectCounts",
    "Task",
    "View",
    "Webhook",
]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Project:
    id: int
    title: str
    description: str
    label_config: str
    task_count: int
    annotation_count: int
    tasks_with_annotations: int
    prediction_count: int

    @classmethod
    def from_json(cls, raw: JSON) -> Project:
        return cls(
            id=int(raw["id"]),
            title=str(raw.get("title") or ""),
            description=str(raw.get("description") or ""),
            label_config=str(raw.get("label_config") or ""),
            task_count=int(raw.get("task_number") or 0),
            annotation_count=int(raw.get("total_annotations_number") or 0),
            tasks_with_annotations=int(raw.get("num_tasks_with_annotations") or 0),
            prediction_count=int(raw.get("total_predictions_number") or 0),
        )


@dataclass(frozen=True)
class ProjectCounts:
    """A project's counters, as Label Studio lists them for many projects in one request:
    when none moved, nothing was annotated, skipped, imported or predicted."""

    id: int
    tasks: int
    annotations: int
    skipped: int
    predictions: int

    @classmethod
    def from_json(cls, raw: JSON) -> ProjectCounts:
        return cls(
            id=int(raw["id"]),
            tasks=int(raw.get("task_number") or 0),
            annotations=int(raw.get("total_annotations_number") or 0),
            skipped=int(raw.get("skipped_annotations_number") or 0),
            predictions=int(raw.get("total_predictions_number") or 0),
        )


@dataclass(frozen=True)
class Annotation:
    id: int
    task_id: int
    result: list[JSON]
    completed_by: int | None
    created_at: datetime | None
    ground_truth: bool
    was_cancelled: bool  # a skipped task: an annotation without a label

    @classmethod
    def from_json(cls, raw: JSON, task_id: int | None = None) -> Annotation:
        user = raw.get("completed_by")
        # A single task embeds the user as an object, a listed task as its id.
        if isinstance(user, dict):
            user = user.get("id")
        return cls(
            id=int(raw["id"]),
            task_id=int(raw.get("task") or task_id or 0),
            result=list(raw.get("result") or []),
            completed_by=None if user is None else int(user),
            created_at=_datetime(raw.get("created_at")),
            ground_truth=bool(raw.get("ground_truth")),
            was_cancelled=bool(raw.get("was_cancelled")),
        )


@dataclass(frozen=True)
class Prediction:
    id: int
    task_id: int
    result: list[JSON]
    score: float | None
    model_version: str
    created_at: datetime | None

    @classmethod
    def from_json(cls, raw: JSON, task_id: int | None = None) -> Prediction:
        score = raw.get("score")
        return cls(
            id=int(raw["id"]),
            task_id=int(raw.get("task") or task_id or 0),
            result=list(raw.get("result") or []),
            score=None if score is None else float(score),
            model_version=str(raw.get("model_version") or ""),
            created_at=_datetime(raw.get("created_at")),
        )


@dataclass(frozen=True)
class Task:
    id: int
    data: JSON
    meta: JSON
    created_at: datetime | None
    annotations: tuple[Annotation, ...]
    predictions: tuple[Prediction, ...]

    @classmethod
    def from_json(cls, raw: JSON) -> Task:
        task_id = int(raw["id"])
        return cls(
            id=task_id,
            data=dict(raw.get("data") or {}),
            meta=dict(raw.get("meta") or {}),
            created_at=_datetime(raw.get("created_at")),
            annotations=tuple(
                Annotation.from_json(a, task_id) for a in raw.get("annotations") or []
            ),
            predictions=tuple(
                Prediction.from_json(p, task_id) for p in raw.get("predictions") or []
            ),
        )


@dataclass(frozen=True)
class Webhook:
    id: int
    project_id: int | None  # None: an organisation-wide webhook
    url: str
    actions: tuple[str, ...]  # empty when send_for_all_actions
    send_for_all_actions: bool
    headers: dict[str, str]
    send_payload: bool
    is_active: bool

    @classmethod
    def from_json(cls, raw: JSON) -> Webhook:
        project = raw.get("project")
        return cls(
            id=int(raw["id"]),
            project_id=None if project is None else int(project),
            url=str(raw["url"]),
            actions=tuple(str(a) for a in raw.get("actions") or []),
            send_for_all_actions=bool(raw.get("send_for_all_actions")),
            headers={str(k): str(v) for k, v in (raw.get("headers") or {}).items()},
            send_payload=bool(raw.get("send_payload")),
            is_active=bool(raw.get("is_active")),
        )


@dataclass(frozen=True)
class MLBackend:
    id: int
    project_id: int
    url: str
    title: str
    state: str  # CO connected, DI disconnected, ER error, TR training, PR predicting
    model_version: str
    is_interactive: bool
    error_message: str | None

    @classmethod
    def from_json(cls, raw: JSON) -> MLBackend:
        return cls(
            id=int(raw["id"]),
            project_id=int(raw["project"]),
            url=str(raw["url"]),
            title=str(raw.get("title") or ""),
            state=str(raw.get("state") or ""),
            model_version=str(raw.get("model_version") or ""),
            is_interactive=bool(raw.get("is_interactive")),
            error_message=raw.get("error_message") or None,
        )


@dataclass(frozen=True)
class View:
    """A Data Manager tab: a named, saved filter over a project's tasks."""

    id: int
    project_id: int
    title: str
    filters: JSON

    @classmethod
    def from_json(cls, raw: JSON) -> View:
        data = raw.get("data") or {}
        return cls(
            id=int(raw["id"]),
            project_id=int(raw["project"]),
            title=str(data.get("title") or ""),
            filters=dict(data.get("filters") or {}),
        )


def _datetime(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None
