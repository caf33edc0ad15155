"""One pass of bringing a Label Studio project in line with its AnnotationProject.

The steps, each level-triggered (safe to repeat, after a crash at any point, or concurrently
with another pass of the same project, which `project_lock` rules out inside one operator):

1. the project: created once, its id recorded on the AnnotationProject at once (an annotation,
   so that a crash before the status write cannot lead to a second project), then title,
   description and label config kept as the spec says;
2. tasks from `spec.data`, each imported once (see `loop.importing`);
3. the project webhook to the operator's receiver, with the project's secret header;
4. the counts, re-read from every task, and what follows from them: quality violations,
   annotator scores and the training round that may start now;
5. where tasks carry predictions: annotations contradicting confident prelabels, and the Data
   Manager views for review and for each annotator tier;
6. prelabels from the project's PrelabelService, in active-learning order (`prelabels`), last,
   since its prelabel server failing must not hold back the steps above.

Label Studio errors are raised as they come; the handler turns them into conditions. The
Label Studio project outlives its AnnotationProject: deleting the resource never deletes
annotation work.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx

from ..api import ANNOTATION_PROJECT, API_VERSION, FINE_TUNE_JOB
from ..api.annotationproject import AnnotationProjectSpec, DataSource
from ..api.labelconfig import LabelSchema
from ..labelstudio import LabelStudioClient, Task
from ..loop import annotators, consistency, counting, importing, quality, routing, trigger
from ..resources.common import LABEL_PREFIX, Owner
from ..resources.rounds import PROJECT_LABEL, build_round_job, round_of
from .conditions import ConditionUpdate, now_rfc3339
from .context import OperatorContext
from .prelabels import push_prelabels
from .webhooks import SECRET_HEADER, hook_path, project_secret

PROJECT_ID_ANNOTATION = f"{LABEL_PREFIX}/label-studio-project-id"
# Events that change what the counts say; everything else only costs a reconcile.
WEBHOOK_ACTIONS = (
    "TASKS_CREATED",
    "TASKS_DELETED",
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
)
IMPORT_BATCH = 500
FETCH_TIMEOUT_S = 30.0

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def project_lock(uid: str) -> threading.Lock:
    """One pass at a time per project: kopf runs the timer and the change handlers of one
    object concurrently, and two concurrent imports could both find a task missing."""
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


class CredentialsMissing(Exception):
    """The token Secret or its key does not exist (yet)."""


class DataSourceUnavailable(Exception):
    """`spec.data` could not be read (a missing ConfigMap, an unreachable URL)."""


@dataclass
class SyncOutcome:
    """What a pass found: status fields to patch, extra conditions, Events to post."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[ConditionUpdate] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    infos: list[tuple[str, str]] = field(default_factory=list)


def read_token(context: OperatorContext, spec: AnnotationProjectSpec, namespace: str) -> str:
    ref = spec.credentials_secret_ref
    secret = context.kube.get("v1", "Secret", ref.name, namespace)
    encoded = ((secret or {}).get("data") or {}).get(ref.key)
    if not encoded:
        raise CredentialsMissing(f"Secret {ref.name} has no key {ref.key!r}")
    return base64.b64decode(encoded).decode().strip()


def ensure_project(
    ls: LabelStudioClient,
    spec: AnnotationProjectSpec,
    known_id: int | None,
    record: Callable[[int], None],
) -> int:
    """The project's id, after creating it if needed and syncing title, description, config.

    `record` is called with a new project's id at once, before anything else can fail.
    """
    wanted = spec.project
    if known_id is None:
        ls.validate_label_config(wanted.label_config)
        project_id = ls.create_project(wanted.title, wanted.description, wanted.label_config)
        record(project_id)
        return project_id
    project = ls.get_project(known_id)
    changes: dict[str, str] = {}
    if project.title != wanted.title:
        changes["title"] = wanted.title
    if project.description != wanted.description:
        changes["description"] = wanted.description
    if project.label_config != wanted.label_config:
        ls.validate_label_config(wanted.label_config, known_id)
        changes["label_config"] = wanted.label_config
    if changes:
        ls.update_project(known_id, **changes)
    return known_id


ConfigMaps = Callable[[str], Mapping[str, str] | None]
"""The data of a ConfigMap of the project's namespace by name; None when there is none."""


def config_maps_of(context: OperatorContext, namespace: str) -> ConfigMaps:
    def data(name: str) -> Mapping[str, str] | None:
        found = context.kube.get("v1", "ConfigMap", name, namespace)
        return None if found is None else dict(found.get("data") or {})

    return data


def read_source(source: DataSource, config_maps: ConfigMaps) -> tuple[str, importing.Format]:
    """(text, format) of a ConfigMap or URL source."""
    if source.config_map_ref is not None:
        ref = source.config_map_ref
        data = config_maps(ref.name)
        if data is None:
            raise DataSourceUnavailable(f"ConfigMap {ref.name} not found")
        text = data.get(ref.key)
        if text is None:
            raise DataSourceUnavailable(f"ConfigMap {ref.name} has no key {ref.key!r}")
        return text, importing.guess_format(ref.key, text=text)
    assert source.url is not None
    try:
        response = httpx.get(source.url, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DataSourceUnavailable(f"GET {source.url}: {exc}") from None
    text = response.text
    fmt = importing.guess_format(source.url, response.headers.get("content-type"), text)
    return text, fmt


def parse_source(
    source: DataSource, schema: LabelSchema, config_maps: ConfigMaps
) -> importing.ParsedRows:
    if source.inline is not None:
        candidates = [(f"item {i + 1}", row) for i, row in enumerate(source.inline)]
        return importing.check_rows(candidates, schema.data_key)
    text, fmt = read_source(source, config_maps)
    return importing.parse_rows(text, fmt, schema.data_key)


def import_tasks(
    ls: LabelStudioClient, project_id: int, parsed: importing.ParsedRows, present: frozenset[str]
) -> int:
    """Import the rows not present yet; return how many were sent."""
    payloads = importing.tasks_to_import(parsed.rows, present)
    for start in range(0, len(payloads), IMPORT_BATCH):
        ls.import_tasks(project_id, payloads[start : start + IMPORT_BATCH])
    return len(payloads)


def ensure_webhook(
    ls: LabelStudioClient, project_id: int, path: str, wanted: tuple[str, str] | None
) -> None:
    """Exactly the webhook `wanted` (url, secret) of ours for this project, or none.

    Ours are the hooks with the secret header whose URL ends in `path`; those at another URL
    (the receiver moved, or a pass crashed after creating one) are deleted, since Label Studio
    would keep waiting up to a second for each inside every annotation request.
    """
    ours = [
        h
        for h in ls.list_webhooks(project_id)
        if SECRET_HEADER in h.headers and h.url.endswith(path)
    ]
    keep = None
    if wanted is not None:
        url, secret = wanted
        headers = {SECRET_HEADER: secret}
        keep = next((h for h in ours if h.url == url), None)
        if keep is None:
            ls.create_webhook(project_id, url, actions=WEBHOOK_ACTIONS, headers=headers)
        elif (
            keep.headers != headers
            or set(keep.actions) != set(WEBHOOK_ACTIONS)
            or not keep.is_active
        ):
            ls.update_webhook(keep.id, actions=WEBHOOK_ACTIONS, headers=headers, is_active=True)
    for hook in ours:
        if hook is not keep:
            ls.delete_webhook(hook.id)


def round_state(
    context: OperatorContext, owner: Owner, prior: Mapping[str, Any]
) -> trigger.RoundState:
    """Past rounds, from the FineTuneJobs that exist and from the status written before."""
    jobs = context.kube.list(
        API_VERSION, FINE_TUNE_JOB.kind, owner.namespace, {PROJECT_LABEL: owner.name}
    )
    rounds = [(r, job) for job in jobs if (r := round_of(job)) is not None]
    latest = max(rounds, key=lambda pair: pair[0][0], default=None)
    recorded = int(prior.get("rounds") or 0)
    last_started = _parse_time(prior.get("lastTrainingTime"))
    cutoff = int(prior.get("lastAnnotationId") or 0)
    if latest is None:
        return trigger.RoundState(recorded, cutoff, last_started)
    (number, job_cutoff), job = latest
    if number >= recorded:
        created = _parse_time(job.get("metadata", {}).get("creationTimestamp"))
        name = str(job.get("metadata", {}).get("name") or "") or None
        return trigger.RoundState(number, job_cutoff, last_started or created, name)
    return trigger.RoundState(recorded, cutoff, last_started)


def start_round(
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    state: trigger.RoundState,
    cutoff: int,
) -> str:
    assert spec.training is not None
    number = state.rounds + 1
    name = trigger.round_job_name(owner.name, number)
    context.kube.create_if_absent(
        build_round_job(owner, name, number, cutoff, spec.training.template)
    )
    return name


def annotator_votes(tasks: list[Task], schema: LabelSchema) -> list[annotators.TaskVotes]:
    """Who answered what, per task; a task's `gold` data field, where set, is its gold answer."""
    rows = []
    gold: dict[int, annotators.Answer] = {}
    for task in tasks:
        given = task.data.get(annotators.GOLD_FIELD)
        if isinstance(given, str) and given:
            gold[task.id] = frozenset([given])
        elif isinstance(given, list) and given:
            gold[task.id] = frozenset(map(str, given))
        for annotation in task.annotations:
            if counting.counted(annotation) and annotation.completed_by is not None:
                answer = frozenset(counting.labels_of_result(schema, annotation.result))
                rows.append((task.id, str(annotation.completed_by), answer))
    return annotators.votes_by_task(rows, gold)


def sync_project(
    ls: LabelStudioClient,
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    *,
    schema: LabelSchema,
    prior: Mapping[str, Any],
    known_id: int | None,
    webhook: tuple[str, bytes] | None,
) -> SyncOutcome:
    """One pass; `webhook` is the receiver's base URL and key, None when there is none."""
    out = SyncOutcome()
    project_id = ensure_project(ls, spec, known_id, partial(_record_project_id, context, owner))
    out.status["labelStudio"] = {"url": ls.url, "projectId": project_id}

    tasks = list(ls.iter_tasks(project_id))
    if spec.data is not None:
        present = counting.tally(tasks, schema, 0).keys
        try:
            parsed = parse_source(spec.data, schema, config_maps_of(context, owner.namespace))
        except DataSourceUnavailable as exc:
            out.conditions.append(
                ConditionUpdate("TasksImported", "False", "SourceUnavailable", str(exc))
            )
            parsed = None
        if parsed is not None:
            if import_tasks(ls, project_id, parsed, present):
                tasks = list(ls.iter_tasks(project_id))
            keys = {importing.row_key(r) for r in parsed.rows}
            imported = len(keys & counting.tally(tasks, schema, 0).keys)
            message = importing.describe(parsed)
            out.status["import"] = {
                "imported": imported,
                "malformed": parsed.malformed,
                "message": message,
            }
            out.conditions.append(
                ConditionUpdate(
                    "TasksImported",
                    "True",
                    "MalformedRows" if parsed.malformed else "Imported",
                    message or f"{imported} task(s) imported",
                )
            )

    path = hook_path(owner.namespace, owner.name)
    wanted = None
    if webhook is not None:
        base, key = webhook
        wanted = (base.rstrip("/") + path, project_secret(key, owner.namespace, owner.name))
    ensure_webhook(ls, project_id, path, wanted)

    state = round_state(context, owner, prior)
    counts = counting.tally(tasks, schema, state.cutoff)
    out.status["counts"] = {
        "tasks": counts.tasks,
        "annotatedTasks": counts.annotated_tasks,
        "annotations": counts.annotations,
        "sinceLastTraining": counts.since_last_training,
    }
    out.status["labelDistribution"] = counts.label_distribution
    out.status["rounds"] = state.rounds
    # Rewritten from what was found, so that a round whose status write was lost (the
    # operator died right after creating its job) is recorded all the same.
    if state.last_job is not None:
        out.status["lastFineTuneJob"] = state.last_job
    if state.last_started is not None:
        out.status["lastTrainingTime"] = state.last_started.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.status["lastAnnotationId"] = state.cutoff

    _judge_quality(spec, counts, prior, out)
    votes = annotator_votes(tasks, schema)
    out.status["annotators"] = [
        _annotator_status(s) for s in annotators.score_annotators(votes, spec.annotators.routing)
    ]
    out.status["agreement"] = annotators.mean_agreement(votes)
    out.status["taskAgreement"] = _agreement_status(annotators.agreement_summary(votes))
    _review(ls, project_id, spec, tasks=tasks, schema=schema, out=out)

    if spec.training is not None:
        _maybe_start_round(context, owner, spec, state=state, counts=counts, out=out)
    push_prelabels(
        ls,
        context,
        owner,
        spec,
        project_id=project_id,
        schema=schema,
        tasks=tasks,
        prior=prior,
        out=out,
    )
    return out


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


def _review(
    ls: LabelStudioClient,
    project_id: int,
    spec: AnnotationProjectSpec,
    *,
    tasks: Sequence[Task],
    schema: LabelSchema,
    out: SyncOutcome,
) -> None:
    """Disagreements with confident prelabels, and the views of tasks by difficulty.

    Both rest on predictions; a project without any gets neither views nor entries.
    """
    if not any(t.predictions for t in tasks):
        return
    views = routing.tier_views()
    check = spec.quality.consistency if spec.quality is not None else None
    if check is not None and check.enabled:
        found = consistency.disagreements(tasks, schema, check.min_score)
        out.status["disagreements"] = [
            {
                "taskId": d.task_id,
                "annotationId": d.annotation_id,
                "annotator": d.annotator,
                "labels": list(d.labels),
                "prelabel": list(d.prelabel),
                "score": d.score,
            }
            for d in found[: consistency.MAX_LISTED]
        ]
        out.status["disagreementCount"] = len(found)
        views.append(routing.ViewSpec(routing.REVIEW_VIEW, consistency.review_filter(found)))
    ensure_views(ls, project_id, views)


def _agreement_status(summary: annotators.AgreementSummary) -> dict[str, Any]:
    return {
        "tasks": summary.tasks,
        "unanimous": summary.unanimous,
        "majority": summary.majority,
        "split": summary.split,
        "lowest": [
            {"taskId": t.task_id, "agreement": t.agreement, "annotators": t.annotators}
            for t in summary.lowest
        ],
    }


def _annotator_status(score: annotators.AnnotatorScore) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "annotator": score.annotator,
        "annotations": score.annotations,
        "tier": score.tier,
    }
    if score.accuracy is not None:  # unset until rated; a null would not fit the schema
        entry["accuracy"] = score.accuracy
    return entry


def _judge_quality(
    spec: AnnotationProjectSpec,
    counts: counting.Tally,
    prior: Mapping[str, Any],
    out: SyncOutcome,
) -> None:
    rules = spec.quality.rules if spec.quality is not None else []
    found = quality.violations(counts.label_distribution, rules)
    out.status["qualityViolations"] = [
        {"label": v.label, "share": v.share, "bound": v.bound, "limit": v.limit} for v in found
    ]
    if not found:
        out.conditions.append(
            ConditionUpdate("QualityRulesMet", "True", "WithinBounds", f"{len(rules)} rule(s) hold")
        )
        return
    message = quality.summary(found)
    out.conditions.append(ConditionUpdate("QualityRulesMet", "False", "RulesViolated", message))
    before = {(v.get("label"), v.get("bound")) for v in prior.get("qualityViolations") or ()}
    if before != {(v.label, v.bound) for v in found}:
        out.warnings.append(("QualityRulesViolated", message))


def _maybe_start_round(
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    *,
    state: trigger.RoundState,
    counts: counting.Tally,
    out: SyncOutcome,
) -> None:
    assert spec.training is not None
    now = datetime.now(UTC)
    rule = spec.training.trigger
    decision = trigger.decide(
        counts.since_last_training, rule.new_annotations, rule.min_interval_seconds, state, now
    )
    if not decision.start:
        out.conditions.append(
            ConditionUpdate("TrainingTriggered", "False", "Waiting", decision.reason)
        )
        return
    name = start_round(context, owner, spec, state, counts.last_annotation_id)
    out.status.update(
        rounds=state.rounds + 1,
        lastFineTuneJob=name,
        lastTrainingTime=now_rfc3339(),
        lastAnnotationId=counts.last_annotation_id,
    )
    out.status["counts"]["sinceLastTraining"] = 0
    message = f"round {state.rounds + 1}: FineTuneJob {name} ({decision.reason})"
    out.conditions.append(ConditionUpdate("TrainingTriggered", "True", "RoundStarted", message))
    out.infos.append(("TrainingRoundStarted", message))


def _record_project_id(context: OperatorContext, owner: Owner, project_id: int) -> None:
    context.kube.patch(
        API_VERSION,
        ANNOTATION_PROJECT.kind,
        owner.name,
        owner.namespace,
        {"metadata": {"annotations": {PROJECT_ID_ANNOTATION: str(project_id)}}},
    )


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None
