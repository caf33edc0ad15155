"""The last step of a project pass: prelabels from the project's PrelabelService.

When `spec.prelabel.serviceRef` names a PrelabelService with an active version, the pass keeps
that service registered as the project's one ML backend and pushes the next batch of its
predictions in active-learning order: `steps.prelabel`, the very steps the local runner
takes. This module only finds the service's version and address on the cluster and turns the
outcome into `status.prelabels`, `status.stopping` (the kappa each version change measured,
kept in status, so a restarted operator loses none but a change it did not see), the
`PrelabelsPushed` condition and Events.

A prelabel server that fails or a backend that Label Studio refuses turns `PrelabelsPushed`
False, with an Event when that reason is new, and the rest of the pass stands. Label Studio's
own errors are raised, as in every other step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import API_VERSION, PRELABEL_SERVICE
from ..api.annotationproject import AnnotationProjectSpec, AnnotationProjectStatus, Stability
from ..api.labelconfig import LabelSchema
from ..labelstudio.client import LabelStudioClient
from ..labelstudio.models import Task
from ..loop import acceptance, active_learning
from ..resources.common import Owner
from ..steps.prelabel import AnswerCache, prelabel_pass, register_backend
from .conditions import ConditionUpdate
from .context import OperatorContext

CONDITION = "PrelabelsPushed"
LISTED = 100
AGREEMENTS_KEPT = 10


@dataclass
class Pushed:
    """What the prelabel step reports: `status.prelabels` (None clears it), conditions,
    Events."""

    status: dict[str, Any] | None
    stopping: dict[str, Any] | None = None
    """`status.stopping`: the stopping rule over the version changes measured so far."""
    conditions: list[ConditionUpdate] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    infos: list[tuple[str, str]] = field(default_factory=list)
    more: bool = False
    """A batch was pushed and more tasks wait for a prediction."""


def push_prelabels(
    ls: LabelStudioClient,
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    *,
    project_id: int,
    schema: LabelSchema,
    tasks: Sequence[Task],
    prior: AnnotationProjectStatus,
    answers: AnswerCache,
) -> Pushed:
    """Register the backend and push the next batch."""
    wanted = spec.prelabel
    if wanted is None:
        register_backend(ls, project_id, "", None)  # ours go
        return Pushed(None)
    name = wanted.service_ref.name
    service = context.kube.get(API_VERSION, PRELABEL_SERVICE.kind, name, owner.namespace)
    found: dict[str, Any] = (service or {}).get("status") or {}
    version = found.get("activeVersion")
    url = wanted.url or found.get("serviceUrl")
    # Every key, so that the merge patch of status clears what no longer holds.
    status: dict[str, Any] = {
        "service": name,
        "url": None,
        "model_version": None,
        "ml_backend_id": None,
        "predicted_tasks": 0,
        "pending_tasks": 0,
        "last_batch": [],
        "acceptance": [
            {"model_version": v, "accepted": a.accepted, "reviewed": a.reviewed}
            for v, a in sorted(acceptance.by_version(tasks, schema).items())
        ][:LISTED],
    }
    agreements = list(prior.stopping.agreements) if prior.stopping is not None else []
    out = Pushed(status, _stopping(agreements, wanted.active_learning.stability))
    if service is None or not version or not url:
        why = f"PrelabelService {name} not found" if service is None else "no active version yet"
        out.conditions.append(ConditionUpdate(CONDITION, "False", "WaitingForModel", why))
        return out
    status.update(url=url, model_version=version)
    failures = []
    backend = register_backend(ls, project_id, name, url)
    status["ml_backend_id"] = backend.id
    if backend.refused is not None:
        failures.append(("MLBackendRefused", backend.refused))

    strategy = wanted.active_learning.strategy
    outcome = prelabel_pass(
        ls,
        project_id=project_id,
        tasks=tasks,
        url=url,
        version=version,
        label_config=spec.project.label_config,
        strategy=strategy,
        batch_size=wanted.active_learning.batch_size,
        cache=answers,
        cache_id=owner.uid,
    )
    if outcome.agreement is not None:
        agreements = [*agreements, round(outcome.agreement, 4)][-AGREEMENTS_KEPT:]
        out.stopping = _stopping(agreements, wanted.active_learning.stability)
    if outcome.server_error is not None:
        failures.append(("PrelabelServerFailed", outcome.server_error))
    if outcome.chosen:
        message = f"{len(outcome.chosen)} prediction(s) of {version} imported ({strategy} order)"
        out.infos.append(("PrelabelsPushed", message))
        out.more = outcome.remaining > 0
    before = prior.prelabels.last_batch if prior.prelabels is not None else []
    status.update(
        predicted_tasks=outcome.predicted,
        pending_tasks=outcome.remaining,
        last_batch=(outcome.chosen or list(before))[:LISTED],
    )
    if failures:
        reason = failures[0][0]
        message = "; ".join(m for _, m in failures)
        out.conditions.append(ConditionUpdate(CONDITION, "False", reason, message))
        if _condition_reason(prior) != reason:
            out.warnings.append((reason, message))
        return out
    message = (
        f"{outcome.predicted} unlabelled task(s) hold a prediction of {version}, "
        f"{outcome.remaining} pending"
    )
    if outcome.unusable:
        message += (
            f"; {len(outcome.unusable)} answer(s) of another version or unusable, asked again"
        )
    out.conditions.append(ConditionUpdate(CONDITION, "True", "Pushed", message))
    return out


def _stopping(agreements: list[float], rule: Stability) -> dict[str, Any]:
    signal = active_learning.stopping_signal(agreements, rule)
    return {
        "prediction_agreement": signal.agreement,
        "agreements": agreements,
        "stable": signal.stable,
        "message": signal.message,
    }


def _condition_reason(prior: AnnotationProjectStatus) -> str | None:
    for condition in prior.conditions:
        if condition.type == CONDITION:
            return str(condition.reason)
    return None
