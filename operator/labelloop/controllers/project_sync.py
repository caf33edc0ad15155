"""One pass of bringing a Label Studio project in line with its AnnotationProject.

The steps, each level-triggered (safe to repeat after a crash at any point; one operator
runs one pass of a project at a time, `controllers.driver`):

1. the project (`steps.project`): created once, its id recorded on the AnnotationProject at
   once (an annotation, so that a crash before the status write cannot lead to a second
   project), then title, description and label config kept as the spec says;
2. tasks from `spec.data`, each imported once (`steps.project.import_data`);
3. the project webhook to the operator's receiver, with the project's secret header
   (`steps.webhook`);
4. the counts, re-read from every task, and what follows from them: quality violations,
   annotator scores and the training round that may start now (a FineTuneJob, made here);
5. where tasks carry predictions: annotations contradicting confident prelabels, and the Data
   Manager views for review and for each annotator tier (`steps.review`);
6. prelabels from the project's PrelabelService, in active-learning order (`prelabels`), last,
   since its prelabel server failing must not hold back the steps above.

The Label Studio steps live in `steps/`, shared with the local runner; this module adds what
needs the cluster (the token Secret, ConfigMaps, FineTuneJobs) and turns the steps' outcomes
into a typed status (`AnnotationProjectStatus`), conditions and Events. Label Studio errors
are raised as they come; the handler turns them into conditions. The Label Studio project
outlives its AnnotationProject: deleting the resource never deletes annotation work.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from ..api import ANNOTATION_PROJECT, API_VERSION, FINE_TUNE_JOB
from ..api.annotationproject import AnnotationProjectSpec, AnnotationProjectStatus
from ..api.labelconfig import LabelSchema
from ..labelstudio.client import LabelStudioClient
from ..loop import annotators, consistency, counting, quality, trigger
from ..resources.common import LABEL_PREFIX, Owner
from ..resources.rounds import PROJECT_LABEL, build_round_job, round_of
from ..steps import project as project_step
from ..steps import review as review_step
from ..steps import webhook as webhook_step
from ..steps.prelabel import AnswerCache
from .audit import Decision, Figure
from .conditions import ConditionUpdate, now_rfc3339
from .context import OperatorContext
from .prelabels import push_prelabels

PROJECT_ID_ANNOTATION = f"{LABEL_PREFIX}/label-studio-project-id"


class CredentialsMissing(Exception):
    """The token Secret or its key does not exist (yet)."""


@dataclass
class SyncOutcome:
    """What a pass found: the status it writes, extra conditions, Events to post, and the
    decisions it took (`audit`)."""

    status: AnnotationProjectStatus
    """The fields the pass sets (a partial status: write it with `exclude_unset`)."""
    conditions: list[ConditionUpdate] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    infos: list[tuple[str, str]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    more_prelabels: bool = False
    """The pass pushed prelabels and more tasks wait for theirs: the next pass pushes more."""
    round_in: int | None = None
    """A round is due but held back by `minIntervalSeconds`: seconds until it may start, when
    nothing else may wake the project."""


def read_token(context: OperatorContext, spec: AnnotationProjectSpec, namespace: str) -> str:
    ref = spec.credentials_secret_ref
    secret = context.kube.get("v1", "Secret", ref.name, namespace)
    encoded = ((secret or {}).get("data") or {}).get(ref.key)
    if not encoded:
        raise CredentialsMissing(f"Secret {ref.name} has no key {ref.key!r}")
    return base64.b64decode(encoded).decode().strip()


def config_maps_of(context: OperatorContext, namespace: str) -> project_step.ConfigMaps:
    def data(name: str) -> Mapping[str, str] | None:
        found = context.kube.get("v1", "ConfigMap", name, namespace)
        return None if found is None else dict(found.get("data") or {})

    return data


def round_state(
    context: OperatorContext, owner: Owner, prior: AnnotationProjectStatus
) -> trigger.RoundState:
    """Past rounds, from the FineTuneJobs that exist and from the status written before."""
    jobs = context.kube.list(
        API_VERSION, FINE_TUNE_JOB.kind, owner.namespace, {PROJECT_LABEL: owner.name}
    )
    rounds = [(r, job) for job in jobs if (r := round_of(job)) is not None]
    latest = max(rounds, key=lambda pair: pair[0][0], default=None)
    recorded = prior.rounds
    last_started = _parse_time(prior.last_training_time)
    cutoff = prior.last_annotation_id or 0
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


def sync_project(
    ls: LabelStudioClient,
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    *,
    schema: LabelSchema,
    prior: AnnotationProjectStatus,
    known_id: int | None,
    webhook: webhook_step.Receiver | None,
    answers: AnswerCache,
) -> SyncOutcome:
    """One pass; `webhook` is the operator's receiver, None when there is none;
    `answers` remembers the prelabel server's answers between passes."""
    fields: dict[str, Any] = {}
    conditions: list[ConditionUpdate] = []
    warnings: list[tuple[str, str]] = []
    infos: list[tuple[str, str]] = []
    decisions: list[Decision] = []
    record = partial(_record_project_id, context, owner)
    project_id = project_step.ensure_project(ls, spec, known_id, record)
    fields["label_studio"] = {"url": ls.url, "project_id": project_id}
    path = webhook_step.hook_path(owner.namespace, owner.name)
    wanted = webhook_step.wanted_hook(webhook, owner.namespace, owner.name, time.time())
    put_webhook_right = partial(webhook_step.ensure_webhook, ls, project_id, path, wanted)
    # A known project's webhook is put right before its tasks are read, so that an annotation
    # made after the read comes with a webhook this operator accepts (after a restart the old
    # secret's are refused). A new project's is created after its first import, whose
    # TASKS_CREATED would only wake this pass again.
    if known_id is not None:
        put_webhook_right()

    tasks = list(ls.iter_tasks(project_id))
    if spec.data is not None:
        imported = project_step.import_data(
            ls,
            project_id,
            spec.data,
            schema=schema,
            config_maps=config_maps_of(context, owner.namespace),
            tasks=tasks,
        )
        tasks = imported.tasks
        if imported.unavailable is not None:
            conditions.append(
                ConditionUpdate("TasksImported", "False", "SourceUnavailable", imported.unavailable)
            )
        else:
            fields["import_"] = {
                "imported": imported.imported,
                "malformed": imported.malformed,
                "message": imported.message,
            }
            conditions.append(
                ConditionUpdate(
                    "TasksImported",
                    "True",
                    "MalformedRows" if imported.malformed else "Imported",
                    imported.message or f"{imported.imported} task(s) imported",
                )
            )
    if known_id is None:
        put_webhook_right()

    state = round_state(context, owner, prior)
    counts = counting.tally(tasks, schema, state.cutoff)
    fields["counts"] = {
        "tasks": counts.tasks,
        "annotated_tasks": counts.annotated_tasks,
        "annotations": counts.annotations,
        "since_last_training": counts.since_last_training,
    }
    fields["label_distribution"] = counts.label_distribution
    fields["rounds"] = state.rounds
    # Rewritten from what was found, so that a round whose status write was lost (the
    # operator died right after creating its job) is recorded all the same.
    if state.last_job is not None:
        fields["last_fine_tune_job"] = state.last_job
    if state.last_started is not None:
        fields["last_training_time"] = state.last_started.strftime("%Y-%m-%dT%H:%M:%SZ")
    fields["last_annotation_id"] = state.cutoff

    judged = _judge_quality(spec, counts, prior)
    fields["quality_violations"] = judged.fields
    conditions.append(judged.condition)
    decisions.extend(judged.decisions)
    votes = annotators.votes_of_tasks(tasks, schema)
    scores = annotators.score_annotators(votes, spec.annotators.routing)
    fields["annotators"] = [_annotator_status(s) for s in scores]
    decisions.extend(tier_changes(prior, scores))
    fields["agreement"] = annotators.mean_agreement(votes)
    fields["task_agreement"] = _agreement_status(annotators.agreement_summary(votes))
    reviewed = review_step.review(ls, project_id, spec, tasks=tasks, schema=schema)
    if reviewed is not None:
        suspects = reviewed.relabel
        fields["relabel_suspects"] = {
            "total": len(suspects.task_ids),
            "contradicted": suspects.contradicted,
            "split": suspects.split,
        }
    if reviewed is not None and reviewed.disagreements is not None:
        found = reviewed.disagreements
        fields["disagreements"] = [_disagreement(d) for d in found[: consistency.MAX_LISTED]]
        fields["disagreement_count"] = len(found)

    round_in = None
    if spec.training is not None:
        started = _maybe_start_round(context, owner, spec, state=state, counts=counts)
        round_in = started.wait_seconds
        conditions.append(started.condition)
        fields.update(started.fields)
        if started.fields:
            decisions.append(
                Decision(
                    "TrainingRoundStarted",
                    started.condition.message,
                    {
                        "round": started.fields["rounds"],
                        "fineTuneJob": started.fields["last_fine_tune_job"],
                        "annotations": counts.annotations,
                        "sinceLastRound": counts.since_last_training,
                        "lastAnnotationId": counts.last_annotation_id,
                    },
                )
            )
            fields["counts"]["since_last_training"] = 0
    pushed = push_prelabels(
        ls,
        context,
        owner,
        spec,
        project_id=project_id,
        schema=schema,
        tasks=tasks,
        prior=prior,
        answers=answers,
    )
    fields["prelabels"] = pushed.status
    fields["stopping"] = pushed.stopping
    conditions.extend(pushed.conditions)
    warnings.extend(pushed.warnings)
    infos.extend(pushed.infos)
    status = AnnotationProjectStatus.model_validate(fields)
    return SyncOutcome(status, conditions, warnings, infos, decisions, pushed.more, round_in)


def _disagreement(d: consistency.Disagreement) -> dict[str, Any]:
    return {
        "task_id": d.task_id,
        "annotation_id": d.annotation_id,
        "annotator": d.annotator,
        "labels": list(d.labels),
        "prelabel": list(d.prelabel),
        "score": d.score,
    }


def _agreement_status(summary: annotators.AgreementSummary) -> dict[str, Any]:
    return {
        "tasks": summary.tasks,
        "unanimous": summary.unanimous,
        "majority": summary.majority,
        "split": summary.split,
        "lowest": [
            {"task_id": t.task_id, "agreement": t.agreement, "annotators": t.annotators}
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


# Tier changes named in one Event; the rest are counted.
MAX_NAMED_CHANGES = 10


def tier_changes(
    prior: AnnotationProjectStatus, scores: list[annotators.AnnotatorScore]
) -> list[Decision]:
    """One decision when annotators moved between tiers since the last pass (an annotator new
    to the project starts from `unrated`)."""
    before = {a.annotator: a.tier for a in prior.annotators}
    moved = [
        (s.annotator, before.get(s.annotator, "unrated"), s.tier, s.accuracy)
        for s in scores
        if s.tier != before.get(s.annotator, "unrated")
    ]
    if not moved:
        return []
    named = "; ".join(
        f"annotator {who}: {old} -> {new}" + (f" (accuracy {acc:.2f})" if acc is not None else "")
        for who, old, new, acc in moved[:MAX_NAMED_CHANGES]
    )
    more = len(moved) - MAX_NAMED_CHANGES
    message = f"{len(moved)} annotator(s) changed tier: {named}" + (
        f"; and {more} more" if more > 0 else ""
    )
    tiers = Counter(s.tier for s in scores)
    figures: dict[str, Figure] = {"changed": len(moved)}
    figures.update({tier: tiers[tier] for tier in annotators.TIERS})
    return [Decision("AnnotatorTiersChanged", message, figures)]


@dataclass(frozen=True)
class _Quality:
    fields: list[dict[str, Any]]
    condition: ConditionUpdate
    decisions: list[Decision]


def _judge_quality(
    spec: AnnotationProjectSpec, counts: counting.Tally, prior: AnnotationProjectStatus
) -> _Quality:
    rules = spec.quality.rules if spec.quality is not None else []
    found = quality.violations(counts.label_distribution, rules)
    listed = [
        {"label": v.label, "share": v.share, "bound": v.bound, "limit": v.limit} for v in found
    ]
    if not found:
        holds = f"{len(rules)} rule(s) hold"
        return _Quality(
            listed, ConditionUpdate("QualityRulesMet", "True", "WithinBounds", holds), []
        )
    message = quality.summary(found)
    condition = ConditionUpdate("QualityRulesMet", "False", "RulesViolated", message)
    before = {(v.label, v.bound) for v in prior.quality_violations}
    if before == {(v.label, v.bound) for v in found}:
        return _Quality(listed, condition, [])
    figures: dict[str, Figure] = {"violations": len(found), "annotations": counts.annotations}
    figures.update({f"{v.label}.{v.bound}": v.share for v in found})
    decision = Decision("QualityRulesViolated", message, figures, warning=True)
    return _Quality(listed, condition, [decision])


@dataclass(frozen=True)
class _Round:
    condition: ConditionUpdate
    fields: dict[str, Any]
    """Status fields of a round started now; empty when none started."""
    wait_seconds: int | None = None
    """Seconds until a held-back round may start."""


def _maybe_start_round(
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    *,
    state: trigger.RoundState,
    counts: counting.Tally,
) -> _Round:
    assert spec.training is not None
    now = datetime.now(UTC)
    rule = spec.training.trigger
    decision = trigger.decide(
        counts.since_last_training, rule.new_annotations, rule.min_interval_seconds, state, now
    )
    if not decision.start:
        waiting = ConditionUpdate("TrainingTriggered", "False", "Waiting", decision.reason)
        return _Round(waiting, {}, decision.wait_seconds)
    name = start_round(context, owner, spec, state, counts.last_annotation_id)
    message = f"round {state.rounds + 1}: FineTuneJob {name} ({decision.reason})"
    return _Round(
        ConditionUpdate("TrainingTriggered", "True", "RoundStarted", message),
        {
            "rounds": state.rounds + 1,
            "last_fine_tune_job": name,
            "last_training_time": now_rfc3339(),
            "last_annotation_id": counts.last_annotation_id,
        },
    )


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
