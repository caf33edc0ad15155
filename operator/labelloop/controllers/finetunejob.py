"""FineTuneJob handlers: render the training Job, then follow it to a versioned model.

One level-triggered pass runs in the object's reconcile loop (`controllers.driver`) until the
run is finished: on start, when its Job or pods change, when its project changes, and at the
scheduling deadline while pods wait; every pass re-reads the Job and its pods, so nothing
depends on having seen an event. A finished run has no loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
import pydantic

from ..api import (
    FINE_TUNE_JOB,
    GROUP,
    PRELABEL_SERVICE,
    VERSION,
    AnnotationProjectSpec,
    FineTuneJobSpec,
    parse_manifest,
)
from ..api.finetunejob import FineTuneJobStatus
from ..loop import serving
from ..resources.common import LABEL_PREFIX, Owner, UnsupportedUri
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
from . import audit
from .audit import Decision
from .conditions import ConditionUpdate, Health
from .context import OperatorContext
from .driver import drive
from .handler import Reconcile, reconciler
from .training_phase import TrainingObservation, observe_training, unplaced_claims

API = f"{GROUP}/{VERSION}"
FINISHED = ("Succeeded", "Failed")
# The URI of the version the run must beat, pinned at its first pass (empty: none).
PREVIOUS_VERSION_ANNOTATION = f"{LABEL_PREFIX}/previous-version-uri"


def _is_active(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in FINISHED


def _invalid(run: Reconcile, message: str) -> None:
    """A spec the models refuse fails the run: it can never train."""
    _conclude(run, _failed("InvalidSpec", message))


@reconciler(FINE_TUNE_JOB, FineTuneJobSpec, on_invalid=_invalid)
def reconcile_fine_tune_job(run: Reconcile, spec: FineTuneJobSpec) -> None:
    context, owner = run.context, run.owner
    try:
        inputs = _inputs(context, owner, spec, run.meta)
    except UnsupportedUri as error:
        _invalid(run, str(error))
        return
    except _WaitingForProject as waiting:
        health = Health("reconciling", "WaitingForProject", str(waiting))
        _conclude(run, TrainingObservation("Pending", health))
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
    missing = [
        claim
        for claim in unplaced_claims(pods)
        if context.kube.get("v1", "PersistentVolumeClaim", claim, owner.namespace) is None
    ]
    run.write(FineTuneJobStatus(job_name=name, model_version=model_version(owner)))
    observation = observe_training(
        current,
        pods,
        scheduling_deadline_seconds=spec.resources.scheduling_deadline_seconds,
        now=datetime.now(UTC),
        missing_claims=missing,
    )
    _conclude(run, observation)


drive(FINE_TUNE_JOB, reconcile_fine_tune_job, when=_is_active)


class _WaitingForProject(Exception):
    """The referenced AnnotationProject is missing or has no Label Studio project yet."""


def _inputs(
    context: OperatorContext, owner: Owner, spec: FineTuneJobSpec, meta: Mapping[str, Any]
) -> TrainingInputs:
    export = None
    previous = None
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
        project_spec = parse_manifest(project).spec
        assert isinstance(project_spec, AnnotationProjectSpec)
        export = LabelStudioExport(
            ls["url"],
            int(ls["projectId"]),
            ref.last_annotation_id,
            project_spec.credentials_secret_ref,
        )
        previous = _previous_version(context, owner, meta, ref.name, project_spec)
    return TrainingInputs(
        owner=owner,
        spec=spec,
        image=spec.image or context.config.trainer_image,
        export=export,
        service_account=TRAINER_SERVICE_ACCOUNT if context.config.trainer_cluster_role else None,
        previous_version_dir=previous,
        scheduling=context.config.workload_scheduling,
    )


def _previous_version(
    context: OperatorContext,
    owner: Owner,
    meta: Mapping[str, Any],
    project: str,
    project_spec: AnnotationProjectSpec,
) -> str | None:
    """The URI of the version the project's PrelabelService serves, which this run must beat
    under `promotion.mustImprove` (`loop.serving.previous_version`, as the local runner
    takes it); None when none serves.

    Chosen once, at the first pass, and pinned in the annotation `PREVIOUS_VERSION_ANNOTATION`
    (empty: none) before the Job and its job file exist, so the job file never changes under
    a running Job, however the serving version moves meanwhile.
    """
    pinned = (meta.get("annotations") or {}).get(PREVIOUS_VERSION_ANNOTATION)
    if pinned is not None:
        return str(pinned) or None
    if context.kube.get("batch/v1", "Job", job_name(owner), owner.namespace) is not None:
        uri = ""  # rendered before this was pinned (an older operator): keep it as it is
    else:
        ref = project_spec.prelabel.service_ref.name if project_spec.prelabel else None
        services = context.kube.list(API, PRELABEL_SERVICE.kind, owner.namespace, {})
        serving_now = serving.previous_of_service(serving.serving_service(project, ref, services))
        uri = serving_now.uri if serving_now is not None else ""
    annotations = {PREVIOUS_VERSION_ANNOTATION: uri}
    context.kube.patch(
        API,
        FINE_TUNE_JOB.kind,
        owner.name,
        owner.namespace,
        {"metadata": {"annotations": annotations}},
    )
    return uri or None


def _failed(reason: str, message: str) -> TrainingObservation:
    return TrainingObservation(
        "Failed",
        Health("stalled", reason, message),
        extra=[
            ConditionUpdate("Succeeded", "False", reason, message),
            ConditionUpdate("Failed", "True", reason, message),
        ],
    )


def _conclude(run: Reconcile, observation: TrainingObservation) -> None:
    previous_phase = run.previous(FineTuneJobStatus).phase
    fields: dict[str, Any] = {"phase": observation.phase}
    if observation.start_time:
        fields["start_time"] = observation.start_time
    if observation.completion_time:
        fields["completion_time"] = observation.completion_time
    if observation.result:
        fields.update(_result_fields(observation.result))
    try:
        update = FineTuneJobStatus.model_validate(fields)
    except pydantic.ValidationError as error:
        # The result line is the trainer's word; one the status schema cannot hold fails the
        # run with the offending fields named, instead of failing every reconcile after it.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        observation = _failed("InvalidResult", f"the trainer's result line: {problems}")
        update = FineTuneJobStatus(phase=observation.phase)
    run.write(update)
    if observation.recheck_in is not None:
        run.recheck_in(observation.recheck_in)
    if update.promotion is not None and observation.phase != previous_phase:
        audit.record(run, gate_verdict(update))
    run.report(observation.health, extra=observation.extra)
    if observation.phase not in (previous_phase, "Failed"):  # a failure is reported as Stalled
        kopf.info(run.body, reason=observation.phase, message=observation.health.message)


def gate_verdict(result: FineTuneJobStatus) -> Decision:
    """The promotion gate's verdict on a finished run, as the trainer reported it."""
    assert result.promotion is not None
    passed = result.promotion.passed
    version = result.model_version
    scores = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.metrics.items()))
    verdict = "passed" if passed else "refused"
    message = f"version {version} {verdict} by the promotion gate: {result.promotion.reason}"
    return Decision(
        "PromotionGatePassed" if passed else "PromotionGateRefused",
        f"{message} ({scores})" if scores else message,
        {**result.metrics, "version": version, "passed": passed},
    )


def _result_fields(result: dict[str, Any]) -> dict[str, Any]:
    """The trainer's result (docs/trainer-contract.md) as FineTuneJobStatus fields."""
    fields: dict[str, Any] = {"model_version": result["modelVersion"]}
    for key, name in (
        ("artifactUri", "artifact_uri"),
        ("bestEpoch", "best_epoch"),
        ("earlyStopped", "early_stopped"),
        ("dataset", "dataset"),
        ("promotion", "promotion"),
        ("tuning", "tuning"),
    ):
        if key in result:
            fields[name] = result[key]
    metrics = result.get("metrics") or {}
    fields["metrics"] = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    return fields
