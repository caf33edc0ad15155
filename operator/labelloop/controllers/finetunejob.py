"""FineTuneJob handlers: render the training Job, then follow it to a versioned model.

One level-triggered `reconcile` runs on create, on operator start (resume) and on a timer
until the run is finished; every call re-reads the Job and its pods, so nothing depends on
having seen an event.
"""

from __future__ import annotations

from typing import Any

import kopf

from ..api import FINE_TUNE_JOB, GROUP, VERSION, FineTuneJobSpec, ManifestError, parse_manifest
from ..resources.common import Owner, UnsupportedUri
from ..resources.training import (
    TRAINER_SERVICE_ACCOUNT,
    LabelStudioExport,
    TrainingInputs,
    build_trainer_role_binding,
    build_trainer_service_account,
    build_training_objects,
    job_name,
    model_version,
)
from .conditions import ConditionUpdate, Health
from .context import RETRY_SECONDS, OperatorContext
from .reporting import report
from .training_phase import TrainingObservation, observe_training

RESOURCE = (GROUP, VERSION, FINE_TUNE_JOB.plural)
FINISHED = ("Succeeded", "Failed")


def _is_active(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in FINISHED


@kopf.on.create(*RESOURCE, backoff=RETRY_SECONDS)
@kopf.on.resume(*RESOURCE, when=_is_active, backoff=RETRY_SECONDS)
@kopf.timer(*RESOURCE, interval=3.0, when=_is_active, backoff=RETRY_SECONDS)
def reconcile_fine_tune_job(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    context: OperatorContext = memo["context"]
    owner = Owner.of(FINE_TUNE_JOB.kind, meta)
    try:
        spec = parse_manifest(body).spec
        assert isinstance(spec, FineTuneJobSpec)
        inputs = _inputs(context, owner, spec)
    except (ManifestError, UnsupportedUri) as error:
        _write(body, status, patch, _config_error(str(error)), meta.get("generation"))
        return
    except _WaitingForProject as waiting:
        observation = TrainingObservation(
            "Pending", Health("reconciling", "WaitingForProject", str(waiting))
        )
        _write(body, status, patch, observation, meta.get("generation"))
        return

    if context.config.trainer_cluster_role:
        # Shared by the namespace's FineTuneJobs, so owned by none of them.
        context.kube.create_if_absent(build_trainer_service_account(owner.namespace))
        binding = build_trainer_role_binding(owner.namespace, context.config.trainer_cluster_role)
        context.kube.create_if_absent(binding)
    *others, job = build_training_objects(inputs)
    for manifest in others:
        context.kube.apply(manifest)
    context.kube.create_if_absent(job)

    name = job_name(owner)
    current = context.kube.get("batch/v1", "Job", name, owner.namespace)
    pods = context.kube.list("v1", "Pod", owner.namespace, {"batch.kubernetes.io/job-name": name})
    observation = observe_training(current, pods)
    patch.status["jobName"] = name
    patch.status["modelVersion"] = model_version(owner)
    _write(body, status, patch, observation, meta.get("generation"))


class _WaitingForProject(Exception):
    """The referenced AnnotationProject is missing or has no Label Studio project yet."""


def _inputs(context: OperatorContext, owner: Owner, spec: FineTuneJobSpec) -> TrainingInputs:
    export = None
    if spec.annotation_project_ref is not None:
        ref = spec.annotation_project_ref
        project = context.kube.get(
            f"{GROUP}/{VERSION}", "AnnotationProject", ref.name, owner.namespace
        )
        if project is None:
            raise _WaitingForProject(f"AnnotationProject {ref.name} not found")
        ls = (project.get("status") or {}).get("labelStudio") or {}
        if not ls.get("url") or ls.get("projectId") is None:
            raise _WaitingForProject(
                f"AnnotationProject {ref.name} has no Label Studio project yet"
            )
        credentials = parse_manifest(project).spec.credentials_secret_ref  # type: ignore[attr-defined]
        export = LabelStudioExport(
            ls["url"], int(ls["projectId"]), ref.last_annotation_id, credentials
        )
    return TrainingInputs(
        owner=owner,
        spec=spec,
        image=spec.image or context.config.trainer_image,
        export=export,
        service_account=TRAINER_SERVICE_ACCOUNT if context.config.trainer_cluster_role else None,
    )


def _config_error(message: str) -> TrainingObservation:
    return TrainingObservation(
        "Failed",
        Health("stalled", "InvalidSpec", message),
        extra=[
            ConditionUpdate("Succeeded", "False", "InvalidSpec", message),
            ConditionUpdate("Failed", "True", "InvalidSpec", message),
        ],
    )


def _write(
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    observation: TrainingObservation,
    generation: int | None,
) -> None:
    previous_phase = status.get("phase")
    patch.status["phase"] = observation.phase
    for key, value in (
        ("startTime", observation.start_time),
        ("completionTime", observation.completion_time),
    ):
        if value:
            patch.status[key] = value
    if observation.result:
        _write_result(patch, observation.result)
    report(body, status, patch, observation.health, generation, extra=observation.extra)
    if observation.phase not in (previous_phase, "Failed"):  # a failure is reported as Stalled
        kopf.info(body, reason=observation.phase, message=observation.health.message)


def _write_result(patch: kopf.Patch, result: dict[str, Any]) -> None:
    """Copy the trainer's result (docs/trainer-contract.md) into status."""
    patch.status["modelVersion"] = result["modelVersion"]
    for key in ("artifactUri", "bestEpoch", "earlyStopped", "dataset", "promotion"):
        if key in result:
            patch.status[key] = result[key]
    metrics = result.get("metrics") or {}
    patch.status["metrics"] = {
        k: float(v) for k, v in metrics.items() if isinstance(v, int | float)
    }
