"""The serving version as the project's one ML backend, and one prelabel pass.

`register_backend` keeps exactly one ML backend of ours (`loop.prelabels.backend_plan`) on the
project, at the serving version's URL, so that Label Studio's own prelabelling and model list
know it. `prelabel_pass` asks that server itself, as Label Studio would, about every unlabelled
task without a prediction of the version (Label Studio would keep only `score`, and active
learning needs every label's probability), ranks the answers (`loop.active_learning`) and
imports the most informative `batch_size` of them in one request.

The server's answers are remembered between passes in an `AnswerCache` that the caller owns
(the operator's context, the local runner), per project and per (URL, version, label config),
so each pending task is asked once, not once per pass. What is already in Label Studio is
re-read every pass, so a pass that died after an import never imports the same task twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..api.annotationproject import ActiveLearningStrategy
from ..api.labelconfig import LabelSchema, parse_label_config
from ..labelstudio.client import LabelStudioClient
from ..labelstudio.errors import LabelStudioRequestError
from ..labelstudio.ml_backend import MLBackendClient, MLBackendError
from ..labelstudio.models import Task
from ..loop import active_learning, prelabels
from ..loop.counting import labels_of_result

JSON = dict[str, Any]
# Tasks per /predict request: well under the server's --max-batch, and a short request.
PREDICT_CHUNK = 100
# How long Label Studio waits for the backend's /predict when it asks it itself.
BACKEND_TIMEOUT_S = 60.0

AnswerKey = tuple[str, str, str]
"""(server URL, model version, label config): answers under another key are not reused."""


class AnswerCache:
    """The prelabel server's answers by task id, per project, kept between passes.

    One per operator process or local run; safe to share between threads (kopf runs the
    passes of different projects concurrently).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._projects: dict[str, tuple[AnswerKey, dict[int, JSON]]] = {}
        self._previous: dict[str, dict[int, JSON]] = {}
        """The previous version's answers, from a version change until they are compared."""

    def known(self, project: str, key: AnswerKey) -> dict[int, JSON]:
        """A copy of the answers remembered for `project` under `key` (none under another)."""
        with self._lock:
            remembered_key, answers = self._projects.get(project, (key, {}))
            return dict(answers) if remembered_key == key else {}

    def keep(self, project: str, key: AnswerKey, answers: Mapping[int, JSON]) -> None:
        """Remember exactly `answers` for `project` under `key`; under a new model version,
        the previous version's answers are put aside for `take_previous`."""
        with self._lock:
            remembered = self._projects.get(project)
            if remembered is not None and remembered[0][1] != key[1]:
                self._previous[project] = remembered[1]
            self._projects[project] = (key, dict(answers))

    def take_previous(self, project: str) -> dict[int, JSON] | None:
        """The previous version's answers once after a version change, then None."""
        with self._lock:
            return self._previous.pop(project, None)

    def forget(self, project: str, task_ids: Sequence[int]) -> None:
        """Drop answers now stored in Label Studio, or unusable ones, which are asked again."""
        dropped = set(task_ids)
        with self._lock:
            if project in self._projects:
                key, known = self._projects[project]
                kept = {i: a for i, a in known.items() if i not in dropped}
                self._projects[project] = (key, kept)


@dataclass(frozen=True)
class Backend:
    """The project's ML backend of ours."""

    id: int | None
    """Its id; None when there is none (no URL, or Label Studio refused it)."""
    refused: str | None = None
    """Label Studio's words when it refused the backend (it checks the URL itself)."""


def ensure_backend(
    ls: LabelStudioClient, project_id: int, title: str, url: str | None
) -> int | None:
    """The id of the project's one ML backend of ours at `url` (none when `url` is None).

    Label Studio's refusal is raised (`LabelStudioRequestError`); `register_backend` turns it
    into an outcome."""
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


def register_backend(
    ls: LabelStudioClient, project_id: int, service: str, url: str | None
) -> Backend:
    """`service`'s server at `url` as the project's one ML backend of ours; none when `url`
    is None. A backend Label Studio refuses (it cannot reach the URL) is an outcome, not an
    error: prelabels still arrive, imported by `prelabel_pass`."""
    try:
        return Backend(ensure_backend(ls, project_id, prelabels.backend_title(service), url))
    except LabelStudioRequestError as error:
        return Backend(None, f"Label Studio refused ML backend {url}: {error}")


@dataclass(frozen=True)
class PrelabelOutcome:
    """What one prelabel pass found and did."""

    version: str
    answers: Mapping[int, JSON]
    """The server's answer for each task that was pending before the pass."""
    pending: int
    """Unlabelled tasks without a prediction of `version` before the pass."""
    asked: int
    """Tasks sent to `/predict` in this pass (the others' answers were remembered)."""
    chosen: list[int]
    """Tasks whose prediction was imported, most informative first (`batch_size` at most)."""
    unusable: tuple[int, ...]
    """Tasks whose answer was of another version or unusable; asked again next pass."""
    predicted: int
    """Unlabelled tasks holding a prediction of `version` after the pass."""
    server_error: str | None = None
    """The prelabel server failed (`MLBackendError`); what it answered before stays."""
    agreement: float | None = None
    """On the first complete pass of a new version: Cohen's kappa between its labels of the
    pending tasks and the previous version's (`active_learning.prediction_agreement`)."""

    @property
    def remaining(self) -> int:
        """Tasks still pending after the pass."""
        return self.pending - len(self.chosen)


def prelabel_pass(
    ls: LabelStudioClient,
    *,
    project_id: int,
    tasks: Sequence[Task],
    url: str,
    version: str,
    label_config: str,
    strategy: ActiveLearningStrategy,
    batch_size: int,
    cache: AnswerCache,
    cache_id: str,
    chunk: int = PREDICT_CHUNK,
    cold_start: bool = False,
) -> PrelabelOutcome:
    """Ask the server at `url` about the tasks lacking `version`'s prediction, import the most
    informative `batch_size` answers; `cache_id` names the project in `cache`. `cold_start`:
    no fine-tuned version serves yet, so the batch is a random sample
    (`active_learning.next_batch`)."""
    pending = prelabels.needing_prediction(tasks, version)
    key = (url, version, label_config)
    known = cache.known(cache_id, key)
    missing = [t for t in pending if t.id not in known]
    failure = None
    try:
        with MLBackendClient(url) as server:
            for answers in server.predict_tasks(missing, label_config, project_id, chunk):
                known.update(answers)
                cache.keep(cache_id, key, known)  # a later chunk failing keeps these
    except MLBackendError as error:
        failure = str(error)
    # Tasks labelled or predicted meanwhile are no longer pending: their answers go.
    wanted = {t.id for t in pending}
    answers = {task_id: a for task_id, a in known.items() if task_id in wanted}
    cache.keep(cache_id, key, answers)
    ranked = prelabels.rank_inputs(answers, version)
    chosen = active_learning.next_batch(
        ranked.candidates, strategy, batch_size, seed=project_id, cold_start=cold_start
    )
    agreement = None
    before = cache.take_previous(cache_id) if failure is None else None
    if before is not None:
        schema = parse_label_config(label_config)
        agreement = active_learning.prediction_agreement(
            _labels(before, schema), _labels(answers, schema)
        )
    if chosen:
        ls.import_predictions(project_id, prelabels.to_import(chosen, answers))
    cache.forget(cache_id, [*chosen, *ranked.unusable])
    return PrelabelOutcome(
        version=version,
        answers=answers,
        pending=len(pending),
        asked=len(missing),
        chosen=chosen,
        unusable=ranked.unusable,
        predicted=prelabels.predicted(tasks, version) + len(chosen),
        server_error=failure,
        agreement=agreement,
    )


def _labels(answers: Mapping[int, JSON], schema: LabelSchema) -> dict[int, str]:
    """Each answer's labels, as one comparable text (answers without a result left out)."""
    return {
        task_id: ",".join(sorted(labels_of_result(schema, answer["result"])))
        for task_id, answer in answers.items()
        if isinstance(answer.get("result"), list)
    }
