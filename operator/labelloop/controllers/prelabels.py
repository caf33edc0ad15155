"""The last step of a project pass: prelabels from the project's PrelabelService.

When `spec.prelabel.serviceRef` names a PrelabelService with an active version, the step

1. keeps that service registered as the project's one ML backend (`loop.prelabels
   .backend_plan`), so that Label Studio's own prelabelling and model list know it;
2. asks the server itself, as Label Studio would, for every unlabelled task without a
   prediction of the active version (Label Studio would keep only `score`, and active learning
   needs every label's probability), ranks the answers with `spec.prelabel.activeLearning`
   and imports the most informative `batchSize` of them in one request.

The server's answers are remembered per project, version, URL and label config, so each
pending task is asked once, not once per pass; what is already in Label Studio is re-read
every pass, so a pass that died after an import never imports the same task twice.

A prelabel server that fails or a backend that Label Studio refuses turns the
`PrelabelsPushed` condition False, with an Event when that reason is new, and the rest of the
pass stands. Label Studio's own errors are raised, as in every other step.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..api import API_VERSION, PRELABEL_SERVICE
from ..api.annotationproject import AnnotationProjectSpec
from ..api.labelconfig import LabelSchema
from ..labelstudio import LabelStudioClient, LabelStudioRequestError, Task
from ..labelstudio.ml_backend import MLBackendClient, MLBackendError
from ..loop import acceptance, active_learning, prelabels
from ..resources.common import Owner
from .conditions import ConditionUpdate
from .context import OperatorContext

if TYPE_CHECKING:  # project_sync calls this module
    from .project_sync import SyncOutcome

CONDITION = "PrelabelsPushed"
# Tasks per /predict request: well under the server's --max-batch, and a short request.
PREDICT_CHUNK = 100
# How long Label Studio waits for the backend's /predict when it asks it itself.
BACKEND_TIMEOUT_S = 60.0
LISTED = 100
_STATUS_KEYS = ("url", "modelVersion", "mlBackendId", "predictedTasks", "pendingTasks", "lastBatch")

_AnswerKey = tuple[str, str, str]
_answers: dict[str, tuple[_AnswerKey, dict[int, dict[str, Any]]]] = {}
_answers_guard = threading.Lock()


def push_prelabels(
    ls: LabelStudioClient,
    context: OperatorContext,
    owner: Owner,
    spec: AnnotationProjectSpec,
    *,
    project_id: int,
    schema: LabelSchema,
    tasks: Sequence[Task],
    prior: Mapping[str, Any],
    out: SyncOutcome,
) -> None:
    """Register the backend and push the next batch; results go into `out`."""
    wanted = spec.prelabel
    if wanted is None:
        ensure_backend(ls, project_id, "", None)
        out.status["prelabels"] = None
        return
    name = wanted.service_ref.name
    service = context.kube.get(API_VERSION, PRELABEL_SERVICE.kind, name, owner.namespace)
    found: dict[str, Any] = (service or {}).get("status") or {}
    version = found.get("activeVersion")
    url = wanted.url or found.get("serviceUrl")
    # Every key, so that the merge patch of status clears what no longer holds.
    status: dict[str, Any] = dict.fromkeys(_STATUS_KEYS) | {"service": name}
    status["acceptance"] = [
        {"modelVersion": version, "accepted": a.accepted, "reviewed": a.reviewed}
        for version, a in sorted(acceptance.by_version(tasks, schema).items())
    ][:LISTED]
    out.status["prelabels"] = status
    if service is None or not version or not url:
        why = f"PrelabelService {name} not found" if service is None else "no active version yet"
        out.conditions.append(ConditionUpdate(CONDITION, "False", "WaitingForModel", why))
        return
    status.update(url=url, modelVersion=version)
    title = prelabels.backend_title(name)
    failures = []
    try:
        status["mlBackendId"] = ensure_backend(ls, project_id, title, url)
    except LabelStudioRequestError as error:
        failures.append(("MLBackendRefused", f"Label Studio refused ML backend {url}: {error}"))

    pending = prelabels.needing_prediction(tasks, version)
    key = (url, version, spec.project.label_config)
    try:
        answers = _answers_for(owner.uid, key, pending, spec.project.label_config, project_id)
    except MLBackendError as error:
        failures.append(("PrelabelServerFailed", str(error)))
        answers = {}
    ranked = prelabels.rank_inputs(answers, version)
    chosen = active_learning.next_batch(
        ranked.candidates,
        wanted.active_learning.strategy,
        wanted.active_learning.batch_size,
        seed=project_id,
    )
    if chosen:
        ls.import_predictions(project_id, prelabels.to_import(chosen, answers))
        strategy = wanted.active_learning.strategy
        message = f"{len(chosen)} prediction(s) of {version} imported ({strategy} order)"
        out.infos.append(("PrelabelsPushed", message))
    _forget(owner.uid, [*chosen, *ranked.unusable])

    before = prior.get("prelabels") or {}
    status.update(
        predictedTasks=prelabels.predicted(tasks, version) + len(chosen),
        pendingTasks=len(pending) - len(chosen),
        lastBatch=chosen[:LISTED] if chosen else list(before.get("lastBatch") or [])[:LISTED],
    )
    if failures:
        reason = failures[0][0]
        message = "; ".join(m for _, m in failures)
        out.conditions.append(ConditionUpdate(CONDITION, "False", reason, message))
        if _condition_reason(prior) != reason:
            out.warnings.append((reason, message))
        return
    message = (
        f"{status['predictedTasks']} unlabelled task(s) hold a prediction of {version}, "
        f"{status['pendingTasks']} pending"
    )
    if ranked.unusable:
        message += f"; {len(ranked.unusable)} answer(s) of another version or unusable, asked again"
    out.conditions.append(ConditionUpdate(CONDITION, "True", "Pushed", message))


def ensure_backend(
    ls: LabelStudioClient, project_id: int, title: str, url: str | None
) -> int | None:
    """The id of the project's one ML backend of ours at `url` (none when `url` is None).

    The local runner takes the same step, so both register a backend alike."""
    plan = prelabels.backend_plan(ls.list_ml_backends(project_id), title, url)
    for backend_id in plan.delete:
        ls.delete_ml_backend(backend_id)
    if url is None:
        return None
    if plan.update is not None:
        return ls.update_ml_backend(plan.update, project_id, url=url, title=title).id
    if plan.create:
        return ls.create_ml_backend(project_id, url, title, timeout=BACKEND_TIMEOUT_S).id
    return plan.keep


def _answers_for(
    uid: str, key: _AnswerKey, pending: Sequence[Task], label_config: str, project_id: int
) -> dict[int, dict[str, Any]]:
    """The server's answer for each pending task: remembered ones, the rest asked now."""
    with _answers_guard:
        remembered_key, remembered = _answers.get(uid, (key, {}))
        known = dict(remembered) if remembered_key == key else {}
    missing = [t for t in pending if t.id not in known]
    if missing:
        with MLBackendClient(key[0]) as server:
            for answers in server.predict_tasks(missing, label_config, project_id, PREDICT_CHUNK):
                known.update(answers)
                with _answers_guard:
                    _answers[uid] = (key, dict(known))
    # Tasks labelled or predicted meanwhile are no longer pending: their answers go.
    wanted = {t.id for t in pending}
    kept = {task_id: a for task_id, a in known.items() if task_id in wanted}
    with _answers_guard:
        _answers[uid] = (key, dict(kept))
    return kept


def _forget(uid: str, task_ids: Sequence[int]) -> None:
    """Drop answers now stored in Label Studio, or unusable ones, which are asked again."""
    dropped = set(task_ids)
    with _answers_guard:
        if uid in _answers:
            key, known = _answers[uid]
            _answers[uid] = (key, {i: a for i, a in known.items() if i not in dropped})


def _condition_reason(prior: Mapping[str, Any]) -> str | None:
    for condition in prior.get("conditions") or ():
        if condition.get("type") == CONDITION:
            return str(condition.get("reason"))
    return None
