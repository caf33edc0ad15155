"""The three custom resource kinds: their names, models and `kubectl get` columns."""

from __future__ import annotations

from dataclasses import dataclass

from .annotationproject import AnnotationProjectSpec, AnnotationProjectStatus
from .base import GROUP, ApiModel
from .finetunejob import FineTuneJobSpec, FineTuneJobStatus
from .prelabelservice import PrelabelServiceSpec, PrelabelServiceStatus


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`."""

    name: str
    type: str
    json_path: str
    description: str
    priority: int = 0
    """0 shows in the default view, 1 only with `-o wide`."""


def condition_column(condition: str, description: str) -> PrinterColumn:
    return PrinterColumn(
        condition, "string", f'.status.conditions[?(@.type=="{condition}")].status', description
    )


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since creation.")
READY_REASON = PrinterColumn(
    "Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', "Why it is (not) Ready."
)


@dataclass(frozen=True)
class Kind:
    """A custom resource kind and everything its CRD is generated from."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[ApiModel]
    status: type[ApiModel]
    columns: tuple[PrinterColumn, ...]

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


ANNOTATION_PROJECT = Kind(
    kind="AnnotationProject",
    plural="annotationprojects",
    short_names=("ap",),
    description=(
        "A Label Studio project, optionally with the Label Studio server it lives on, whose "
        "annotations feed fine-tuning rounds."
    ),
    spec=AnnotationProjectSpec,
    status=AnnotationProjectStatus,
    columns=(
        condition_column("Ready", "Whether the project is in sync with Label Studio."),
        PrinterColumn(
            "Project", "integer", ".status.labelStudio.projectId", "Label Studio project id."
        ),
        PrinterColumn("Tasks", "integer", ".status.counts.tasks", "Tasks in the project."),
        PrinterColumn(
            "Annotations", "integer", ".status.counts.annotations", "Annotations in the project."
        ),
        PrinterColumn(
            "New",
            "integer",
            ".status.counts.sinceLastTraining",
            "Annotations since the last training round.",
        ),
        PrinterColumn("Rounds", "integer", ".status.rounds", "Training rounds started."),
        PrinterColumn(
            "Last Job", "string", ".status.lastFineTuneJob", "FineTuneJob of the latest round.", 1
        ),
        PrinterColumn("URL", "string", ".status.labelStudio.url", "Label Studio URL.", 1),
        AGE,
    ),
)

FINE_TUNE_JOB = Kind(
    kind="FineTuneJob",
    plural="finetunejobs",
    short_names=("ftj",),
    description="One LoRA fine-tuning run, from a dataset snapshot to a versioned model.",
    spec=FineTuneJobSpec,
    status=FineTuneJobStatus,
    columns=(
        PrinterColumn("Phase", "string", ".status.phase", "Pending, Running, Succeeded or Failed."),
        PrinterColumn(
            "Project", "string", ".spec.annotationProjectRef.name", "Source AnnotationProject."
        ),
        PrinterColumn("Nodes", "integer", ".spec.resources.nodes", "Pods, one per node."),
        PrinterColumn("GPUs/Node", "integer", ".spec.resources.gpusPerNode", "GPUs in each pod."),
        PrinterColumn("Version", "string", ".status.modelVersion", "Model version produced."),
        PrinterColumn(
            "Macro-F1", "number", ".status.metrics.macro_f1", "Macro F1 on the held-out split."
        ),
        READY_REASON,
        PrinterColumn(
            "Gate", "boolean", ".status.promotion.passed", "Whether the promotion gate passed.", 1
        ),
        PrinterColumn(
            "Serving-Score",
            "number",
            ".status.promotion.servingScore",
            "The serving version's score on the same held-out annotations.",
            1,
        ),
        PrinterColumn("Job", "string", ".status.jobName", "The batch/v1 Job.", 1),
        PrinterColumn("Epoch", "number", ".status.progress.epoch", "Current epoch.", 1),
        AGE,
    ),
)

PRELABEL_SERVICE = Kind(
    kind="PrelabelService",
    plural="prelabelservices",
    short_names=("pls",),
    description="Versioned prelabel deployments of a project's models, with automatic rollback.",
    spec=PrelabelServiceSpec,
    status=PrelabelServiceStatus,
    columns=(
        condition_column("Ready", "Whether the active version serves all traffic."),
        PrinterColumn("Active", "string", ".status.activeVersion", "Version serving traffic."),
        PrinterColumn("Previous", "string", ".status.previousVersion", "Rollback target."),
        PrinterColumn(
            "Project", "string", ".spec.annotationProjectRef.name", "AnnotationProject prelabelled."
        ),
        READY_REASON,
        PrinterColumn("Strategy", "string", ".spec.rollout.strategy", "Canary or BlueGreen.", 1),
        AGE,
    ),
)

KINDS: tuple[Kind, ...] = (ANNOTATION_PROJECT, FINE_TUNE_JOB, PRELABEL_SERVICE)
