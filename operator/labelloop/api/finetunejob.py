"""FineTuneJob: one fine-tuning run, from a dataset snapshot to a versioned model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .base import (
    DNS_LABEL,
    ApiModel,
    ArtifactLocation,
    CommonStatus,
    Invariant,
    ObjectName,
    PodMetadata,
    TransitionRule,
    exactly_one_set,
)

Metric = Literal["accuracy", "precision", "recall", "f1"]
LrScheduler = Literal[
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"
]


class LoraSettings(ApiModel):
    """Low-rank adapter settings (PEFT LoRA)."""

    r: Annotated[int, Field(ge=1, le=1024)] = 8
    """Rank of the update matrices."""
    alpha: Annotated[int, Field(ge=1, le=4096)] = 16
    """Scaling numerator: updates are scaled by alpha / r."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Dropout on the adapter's input."""
    target_modules: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]], Field(max_length=64)
    ] = []
    """Module names to adapt, e.g. `[query, value]`; empty picks the attention projections of
    the base model's architecture."""


class Method(ApiModel):
    """The fine-tuning method."""

    type: Literal["lora"] = "lora"
    """Method; only LoRA adapters for now."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """LoRA settings."""


class EarlyStopping(ApiModel):
    """Keep the best epoch, and stop when the monitored metric stays clearly below it.

    Accuracy, precision, recall and F1 measured on n held-out annotations move by chance by
    about 0.5/sqrt(n) (0.08 on 40 annotations): an evaluation counts toward `patience` only
    when it is that much below the best. A loss has no such scale: every evaluation that
    does not lower it counts."""

    patience: Annotated[int, Field(ge=1, le=100)] = 3
    """Evaluations in a row clearly worse than the best before training stops."""
    metric: Literal["eval_loss", "accuracy", "precision", "recall", "f1"] | None = None
    """Monitored metric, which also picks the epoch kept; eval_loss is minimised, the others
    maximised. Unset: the promotion gate's metric (macro-F1 without a gate), so the version
    kept is the one the gate would rather promote. `eval_loss` keeps the epoch of lowest
    loss instead."""

    def monitored(self, promotion: Promotion | None) -> str:
        """The metric this watches: its own, else the gate's, else the default gate's."""
        return self.metric or (promotion or Promotion()).metric


def count_or_auto(name: str, json_name: str, maximum: int | None = None) -> Invariant:
    """The rule of a field that is a positive integer (at most `maximum`) or `auto`."""
    limit = "" if maximum is None else f" && int(self.{json_name}) <= {maximum}"
    allowed = "a positive integer" if maximum is None else f"an integer from 1 to {maximum}"

    def holds(model: Any) -> bool:
        value = getattr(model, name)
        if value == "auto":
            return True
        return isinstance(value, int) and value >= 1 and (maximum is None or value <= maximum)

    return Invariant(
        cel=f"type(self.{json_name}) == int ? int(self.{json_name}) >= 1{limit} : "
        f"string(self.{json_name}) == 'auto'",
        message=f"{json_name} must be {allowed} or 'auto'",
        holds=holds,
        field_path=f".{json_name}",
    )


class Hyperparameters(ApiModel):
    """Optimisation settings."""

    invariants = (
        count_or_auto("batch_size", "batchSize"),
        count_or_auto("epochs", "epochs", maximum=1000),
    )

    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-3
    """Peak learning rate. LoRA adapters start at zero and train a small share of the
    weights, so they need far larger steps than full fine-tuning's usual 3e-5: on DynaSent
    with MiniLM, 3e-5 reached macro-F1 0.40 on three classes, 1e-3 0.70 on all 1,950
    training rows and 0.63 on 480 (where 5e-4 gave 0.58)."""
    lr_scheduler: LrScheduler = "cosine"
    """Learning-rate schedule after warm-up."""
    warmup_ratio: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    """Share of the steps spent warming up."""
    # Typed loosely on purpose: the invariants above give one message for every bad value.
    epochs: Annotated[int | str, Field(union_mode="left_to_right")] = "auto"
    """Passes over the training data (early stopping may end sooner), or `auto`: enough
    passes for 500 optimiser steps, between 3 and 10. An adapter learns from its number of
    updates: with 480 DynaSent crowd labels in batches of 9, 3 passes reached accuracy 0.58
    on the other 1,838 sentences and 10 passes 0.64."""
    batch_size: Annotated[int | str, Field(union_mode="left_to_right")] = "auto"
    """Per-device batch size, or `auto`: the largest power of two that leaves every epoch at
    least 50 optimiser steps (an adapter learns from its number of updates), between 4 and
    16 on a CPU, and on a GPU within a third of its memory."""
    gradient_accumulation_steps: Annotated[int, Field(ge=1, le=1024)] = 1
    """Batches whose gradients are summed before each optimiser step."""
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.0
    """AdamW weight decay."""
    max_sequence_length: Annotated[int, Field(ge=8, le=32768)] = 256
    """Longer texts are truncated to this many tokens."""
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 42
    """Seed for the split, initialisation and data order."""
    eval_split: Annotated[float, Field(gt=0, le=0.5)] = 0.2
    """Share of the data held out for evaluation; each text's side is fixed by it and `seed`, so
    an annotation held out once stays held out as the data grows."""
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    """Early stopping."""


class GpuSelector(ApiModel):
    """Which GPUs the pods need, matched against GPU Feature Discovery node labels."""

    product: (
        Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9._-]+$")] | None
    ) = None
    """Required `nvidia.com/gpu.product`, e.g. `NVIDIA-H100-80GB-HBM3`; any when unset."""
    min_memory_gib: Annotated[int, Field(ge=0, le=4096, alias="minMemoryGiB")] = 24
    """Least memory per GPU in GiB, as GPUs are sold (`24` admits a 24 GB L4): matched
    against `nvidia.com/gpu.memory`, which reports up to 10% less."""


class Resources(ApiModel):
    """Placement: nodes, GPUs per node, GPU kind and interconnect."""

    invariants = (
        Invariant(
            cel="self.interconnect != 'nvlink' || self.nodes * self.gpusPerNode >= 2",
            message="interconnect nvlink needs at least two GPUs (nodes * gpusPerNode >= 2)",
            holds=lambda r: r.interconnect != "nvlink" or r.nodes * r.gpus_per_node >= 2,
            field_path=".interconnect",
        ),
    )

    nodes: Annotated[int, Field(ge=1, le=64)] = 1
    """Pods, one per node, each holding all of its node's GPUs."""
    gpus_per_node: Annotated[int, Field(ge=0, le=16)] = 1
    """GPUs in each pod; 0 trains on CPU."""
    gpu: GpuSelector = Field(default_factory=GpuSelector)
    """GPU product and memory."""
    interconnect: Literal["nvlink", "any"] = "any"
    """`nvlink` keeps multi-node jobs inside one NVLink domain (`nvidia.com/gpu.clique`)."""
    queue_name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)] | None = None
    """Kueue LocalQueue; the Job is created suspended and Kueue admits it."""
    scheduling_deadline_seconds: Annotated[int, Field(ge=10, le=604_800)] = 600
    """Longest the pods may wait to be placed on nodes (no node has the GPUs asked for, a
    PersistentVolumeClaim does not exist) before the run is Stalled, like a Deployment's
    progressDeadlineSeconds; it recovers if they are placed later. Time waiting in a Kueue
    queue does not count."""


class Promotion(ApiModel):
    """The gate a new version must pass before it is rolled out."""

    metric: Metric = "f1"
    """Metric compared (macro average for precision, recall and f1)."""
    minimum: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Least value of the metric."""
    must_improve: bool = True
    """Also require a better value than the active version's."""


class Evaluation(ApiModel):
    """Metrics computed on the held-out split, and the promotion gate."""

    invariants = (
        Invariant(
            cel="!has(self.promotion) || self.promotion.metric in self.metrics",
            message="promotion.metric must be one of metrics",
            holds=lambda e: e.promotion is None or e.promotion.metric in e.metrics,
            field_path=".promotion.metric",
        ),
    )

    metrics: Annotated[list[Metric], Field(min_length=1, max_length=8)] = [
        "accuracy",
        "precision",
        "recall",
        "f1",
    ]
    """Metrics to compute."""
    promotion: Promotion | None = None
    """Gate for rolling the version out; every version passes when unset."""


class LearningRateRange(ApiModel):
    """The learning rates a search may try, drawn on a log scale."""

    invariants = (
        Invariant(
            cel="self.min <= self.max",
            message="min must not exceed max",
            holds=lambda r: r.min <= r.max,
            field_path=".min",
        ),
    )

    min: Annotated[float, Field(gt=0, le=1)] = 2e-4
    """Smallest learning rate."""
    max: Annotated[float, Field(gt=0, le=1)] = 3e-3
    """Largest learning rate."""


Choices = Annotated[list[Annotated[int, Field(ge=1, le=1024)]], Field(max_length=16)]


class SearchSpace(ApiModel):
    """What each trial may change; everything else is `hyperparameters` and `method.lora`."""

    learning_rate: LearningRateRange = Field(default_factory=LearningRateRange)
    """Learning rates around the default, which suits LoRA adapters (log scale)."""
    lora_r: Choices = [4, 8, 16]
    """LoRA ranks; `alpha` keeps its ratio to the rank of `method.lora`."""
    epochs: Choices = [2, 3, 4]
    """Passes over the data (the best epoch is kept, as without a search)."""
    batch_size: Choices = []
    """Batch sizes; empty keeps `hyperparameters.batchSize` (`auto` by default)."""


class Tuning(ApiModel):
    """Hyperparameter search inside the run: trials trained one after another in the same
    Job, chosen by Optuna's TPE sampler (seeded with `hyperparameters.seed`), the best trial's
    model written as the version."""

    trials: Annotated[int, Field(ge=1, le=200)] = 8
    """Trials to train; a trial that fails is recorded and the search goes on."""
    objective: Metric | None = None
    """The metric to maximise on the held-out split; unset: the promotion gate's (macro-F1
    without a gate)."""
    space: SearchSpace = Field(default_factory=SearchSpace)
    """What the trials may change."""

    def objective_metric(self, promotion: Promotion | None) -> str:
        """The metric the search maximises: its own, else the gate's, else the default's."""
        return self.objective or (promotion or Promotion()).metric


class FineTuneJobTemplate(ApiModel):
    """A FineTuneJob spec without its data source (used by AnnotationProject training)."""

    base_model: ArtifactLocation
    """Base model weights on a volume or in an object store."""
    method: Method = Field(default_factory=Method)
    """Fine-tuning method and its settings."""
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    """Optimisation settings."""
    resources: Resources = Field(default_factory=Resources)
    """Nodes, GPUs and interconnect."""
    evaluation: Evaluation = Field(default_factory=Evaluation)
    """Metrics and promotion gate."""
    tuning: Tuning | None = None
    """Hyperparameter search within the run; unset: one run with `hyperparameters`."""
    output: ArtifactLocation
    """Where model versions are written, each in its own immutable directory."""
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Trainer image; the operator's default when unset."""
    pod_metadata: PodMetadata | None = None
    """Labels and annotations for the training pods."""


class ProjectSnapshotReference(ApiModel):
    """An AnnotationProject whose annotations, up to a cut-off, are the training data."""

    name: ObjectName
    """Name of the AnnotationProject."""
    round: Annotated[int, Field(ge=1)] | None = None
    """Training round of the project this job belongs to."""
    last_annotation_id: Annotated[int, Field(ge=0)] | None = None
    """Newest annotation included; all annotations when unset."""


class DatasetFile(ApiModel):
    """A JSON, JSONL or CSV file of labelled examples."""

    uri: Annotated[str, Field(min_length=1, max_length=1024)]
    """Location of the file, like baseModel.uri."""
    text_field: Annotated[str, Field(min_length=1, max_length=256)] = "text"
    """Field holding the text."""
    label_field: Annotated[str, Field(min_length=1, max_length=256)] = "label"
    """Field holding the label (a list for multi-label, spans for NER)."""


class FineTuneJobSpec(FineTuneJobTemplate):
    """Desired state of a FineTuneJob."""

    invariants = (
        Invariant(
            cel="has(self.annotationProjectRef) != has(self.dataset)",
            message="set exactly one of annotationProjectRef or dataset",
            holds=exactly_one_set("annotation_project_ref", "dataset"),
        ),
    )

    # A run's Job is made once; a changed spec would be silently ignored, so it is refused.
    transition_rules = (
        TransitionRule(
            cel="self == oldSelf", message="spec is immutable: create a new FineTuneJob"
        ),
    )

    annotation_project_ref: ProjectSnapshotReference | None = None
    """Train on a snapshot of this AnnotationProject's annotations."""
    dataset: DatasetFile | None = None
    """Train on a file instead."""


# --- status -------------------------------------------------------------------------------

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]


class DatasetSnapshot(ApiModel):
    """The data a run trained on."""

    count: Annotated[int, Field(ge=0)]
    """Examples after cleaning."""
    hash: str
    """Content hash of the cleaned dataset."""


class Progress(ApiModel):
    """Live training progress, reported by the trainer."""

    epoch: Annotated[float, Field(ge=0)] = 0
    """Current epoch (fractional within an epoch)."""
    step: Annotated[int, Field(ge=0)] = 0
    """Optimiser steps done."""
    total_steps: Annotated[int, Field(ge=0)] | None = None
    """Optimiser steps planned."""
    loss: float | None = None
    """Latest training loss."""
    updated_at: str | None = None
    """When progress was last reported (RFC 3339)."""


class PromotionVerdict(ApiModel):
    """Result of the promotion gate: this version and the serving one, scored on the same
    held-out annotations."""

    passed: bool
    """Whether the version may be rolled out."""
    reason: str = ""
    """Why, for a person."""
    metric: str | None = None
    """The metric compared, as computed (`macro_f1` for `f1`)."""
    candidate_score: float | None = None
    """This version's value of it on the held-out annotations."""
    serving_score: float | None = None
    """The serving version's value on the same annotations (before any version serves, the
    base model's zero-shot guess); unset when nothing could be compared."""
    serving_version: str | None = None
    """The version compared with: its name, or `zero-shot`."""


class TuningSummary(ApiModel):
    """How a search went; every trial's parameters and score are in the version's
    `metrics.json`."""

    objective: str
    """The metric maximised, as computed (`macro_f1` for `f1`)."""
    trials: Annotated[int, Field(ge=0)]
    """Trials run."""
    failed: Annotated[int, Field(ge=0)] = 0
    """Trials that failed (the search went on without them)."""
    best_trial: Annotated[int, Field(ge=0)] | None = None
    """Number of the trial whose model is the version."""
    best_score: float | None = None
    """Its objective on the held-out split."""
    best_parameters: dict[str, float] = {}
    """Its learning rate, LoRA rank, epochs and batch size."""


class FineTuneJobStatus(CommonStatus):
    """Observed state of a FineTuneJob."""

    phase: Phase | None = None
    """Pending, Running, Succeeded or Failed."""
    job_name: Annotated[str, Field(pattern=DNS_LABEL)] | None = None
    """The batch/v1 Job running the trainer."""
    model_version: Annotated[str, Field(max_length=63, pattern=DNS_LABEL)] | None = None
    """Version this run produces."""
    artifact_uri: str | None = None
    """Where the version was written."""
    start_time: str | None = None
    """When the Job started (RFC 3339)."""
    completion_time: str | None = None
    """When the Job finished (RFC 3339)."""
    dataset: DatasetSnapshot | None = None
    """Size and hash of the training data."""
    progress: Progress | None = None
    """Live progress."""
    metrics: dict[str, float] = {}
    """Final evaluation metrics on the held-out split: `accuracy`, `macro_precision`,
    `macro_recall`, `macro_f1`, `eval_loss` and any plug-in metrics."""
    best_epoch: Annotated[int, Field(ge=0)] | None = None
    """Epoch of the kept checkpoint."""
    early_stopped: bool | None = None
    """Whether early stopping ended the run."""
    promotion: PromotionVerdict | None = None
    """Verdict of the promotion gate."""
    tuning: TuningSummary | None = None
    """The hyperparameter search, when `spec.tuning` asked for one."""
