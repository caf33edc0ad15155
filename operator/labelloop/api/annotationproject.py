"""AnnotationProject: one Label Studio project and, optionally, the server it lives on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .base import (
    DNS_LABEL,
    ApiModel,
    CommonStatus,
    Invariant,
    LocalObjectReference,
    ObjectName,
    ResourceRequirements,
    SecretKeySelector,
    exactly_one_set,
)
from .finetunejob import FineTuneJobTemplate

Share = Annotated[float, Field(ge=0, le=1)]


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler for the Label Studio Deployment."""

    invariants = (
        Invariant(
            cel="self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            holds=lambda a: a.min_replicas <= a.max_replicas,
            field_path=".minReplicas",
        ),
    )

    min_replicas: Annotated[int, Field(ge=1, le=100)] = 1
    """Fewest replicas the autoscaler keeps."""
    max_replicas: Annotated[int, Field(ge=1, le=100)]
    """Most replicas the autoscaler may run."""
    target_cpu_utilization_percentage: Annotated[
        int, Field(ge=1, le=100, alias="targetCPUUtilizationPercentage")
    ] = 80
    """Average CPU utilisation, in percent of the request, that the autoscaler aims for."""


class Database(ApiModel):
    """PostgreSQL for Label Studio; required as soon as two replicas can run."""

    secret_ref: LocalObjectReference
    """Secret with the keys `host`, `port`, `database`, `username` and `password`."""


class Storage(ApiModel):
    """The PersistentVolumeClaim holding Label Studio's media and uploads."""

    size: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")] = (
        "10Gi"
    )
    """Requested size, e.g. `20Gi`."""
    storage_class_name: ObjectName | None = None
    """StorageClass of the claim; the cluster's default when unset."""


class ManagedLabelStudio(ApiModel):
    """Label Studio run by the operator in this namespace."""

    invariants = (
        Invariant(
            cel=(
                "(self.replicas > 1 || (has(self.autoscaling) && self.autoscaling.maxReplicas > 1))"
                " ? has(self.database) : true"
            ),
            message=(
                "database.secretRef is required when more than one replica can run "
                "(replicas > 1 or autoscaling.maxReplicas > 1): SQLite cannot be shared"
            ),
            holds=lambda m: (
                m.database is not None
                or not (
                    m.replicas > 1 or (m.autoscaling is not None and m.autoscaling.max_replicas > 1)
                )
            ),
            field_path=".database",
        ),
    )

    image: Annotated[str, Field(min_length=1, max_length=512)] = "heartexlabs/label-studio:1.23.2"
    """Container image of Label Studio."""
    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    """Replicas to run when autoscaling is not set."""
    autoscaling: Autoscaling | None = None
    """Scale between minReplicas and maxReplicas on CPU load."""
    database: Database | None = None
    """PostgreSQL to use instead of SQLite on the data volume."""
    storage: Storage = Field(default_factory=Storage)
    """Volume for media and uploads."""
    resources: ResourceRequirements | None = None
    """Compute resources of the Label Studio container."""


class ExternalLabelStudio(ApiModel):
    """A Label Studio server that runs elsewhere; the operator deploys nothing."""

    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?$")]
    """Base URL, e.g. `https://labelstudio.example.com`."""


class LabelStudioSource(ApiModel):
    """Where the Label Studio server is: run by the operator, or an existing one."""

    invariants = (
        Invariant(
            cel="has(self.managed) != has(self.external)",
            message="set exactly one of managed or external",
            holds=exactly_one_set("managed", "external"),
        ),
    )

    managed: ManagedLabelStudio | None = None
    """Run Label Studio in this namespace."""
    external: ExternalLabelStudio | None = None
    """Use an existing Label Studio server."""
    connection_deadline_seconds: Annotated[int, Field(ge=10, le=604_800)] = 600
    """Longest Label Studio may stay unreachable (refused, timed out, a gateway error) before
    the project is Stalled with the reason LabelStudioUnreachable, like a Deployment's
    progressDeadlineSeconds; a shorter outage only keeps it Reconciling, and it is Ready again
    as soon as Label Studio answers."""


class ProjectSettings(ApiModel):
    """The Label Studio project itself."""

    title: Annotated[str, Field(min_length=3, max_length=50)]
    """Project title (Label Studio allows 3 to 50 characters)."""
    description: Annotated[str, Field(max_length=4096)] = ""
    """Project description shown to annotators."""
    label_config: Annotated[str, Field(min_length=1, max_length=65536, pattern=r"^\s*<View")]
    """Label Studio labelling configuration (XML starting with `<View>`)."""


class ConfigMapKeySelector(ApiModel):
    """One key of a ConfigMap in the same namespace."""

    name: ObjectName
    """Name of the ConfigMap."""
    key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key holding the tasks (JSON, JSONL or CSV)."""


class DataSource(ApiModel):
    """Where the project's tasks come from."""

    invariants = (
        Invariant(
            cel="[has(self.inline), has(self.configMapRef), has(self.url)]"
            ".filter(x, x).size() == 1",
            message="set exactly one of inline, configMapRef or url",
            holds=exactly_one_set("inline", "config_map_ref", "url"),
        ),
    )

    inline: (
        Annotated[
            list[dict[str, Any]],
            Field(
                max_length=10000, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
            ),
        ]
        | None
    ) = None
    """Task data objects written in the manifest, e.g. `[{text: "Great food"}]`."""
    config_map_ref: ConfigMapKeySelector | None = None
    """Tasks stored in a ConfigMap key."""
    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    """HTTP(S) URL of a JSON, JSONL or CSV file of tasks."""


class QualityRule(ApiModel):
    """A bound on the share of one label among all annotations."""

    invariants = (
        Invariant(
            cel="has(self.maxShare) || has(self.minShare)",
            message="set maxShare, minShare or both",
            holds=lambda r: r.max_share is not None or r.min_share is not None,
        ),
        Invariant(
            cel="!has(self.maxShare) || !has(self.minShare) || self.minShare <= self.maxShare",
            message="minShare must not exceed maxShare",
            holds=lambda r: (
                r.max_share is None or r.min_share is None or r.min_share <= r.max_share
            ),
            field_path=".minShare",
        ),
    )

    label: Annotated[str, Field(min_length=1, max_length=256)]
    """The label the rule is about, as spelt in the label config."""
    max_share: Share | None = None
    """Largest allowed share of annotations with this label (0 to 1)."""
    min_share: Share | None = None
    """Smallest allowed share of annotations with this label (0 to 1)."""


class Consistency(ApiModel):
    """Flag annotations that disagree with a confident prelabel, for review."""

    enabled: bool = True
    """Whether to look for such disagreements."""
    min_score: Share = 0.9
    """A prelabel counts as confident from this score on."""


class Quality(ApiModel):
    """Quality rules evaluated on every count."""

    rules: Annotated[list[QualityRule], Field(max_length=64)] = []
    """Bounds on label shares, e.g. `{label: Neutral, maxShare: 0.30}`."""
    consistency: Consistency | None = None
    """Disagreement with confident prelabels."""


class Routing(ApiModel):
    """Annotator tiers by measured accuracy."""

    invariants = (
        Invariant(
            cel="self.basicMaxAccuracy <= self.expertMinAccuracy",
            message="basicMaxAccuracy must not exceed expertMinAccuracy",
            holds=lambda r: r.basic_max_accuracy <= r.expert_min_accuracy,
            field_path=".basicMaxAccuracy",
        ),
    )

    expert_min_accuracy: Share = 0.95
    """Annotators at or above this accuracy are experts and get the hardest tasks."""
    basic_max_accuracy: Share = 0.85
    """Annotators below this accuracy are basic and get the easiest tasks."""


class Annotators(ApiModel):
    """How annotators are measured and routed."""

    routing: Routing = Field(default_factory=Routing)
    """Tiers by accuracy against consensus and gold tasks."""


class TrainingTrigger(ApiModel):
    """When a new training round starts."""

    new_annotations: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    """Annotations since the last round that start the next one."""
    min_interval_seconds: Annotated[int, Field(ge=0, le=31_536_000)] = 0
    """Least time between the starts of two rounds."""


class Training(ApiModel):
    """Automatic fine-tuning: a FineTuneJob from `template` whenever `trigger` fires."""

    trigger: TrainingTrigger = Field(default_factory=TrainingTrigger)
    """When to start a round."""
    template: FineTuneJobTemplate
    """The FineTuneJob spec for each round; the data source is this project."""


ActiveLearningStrategy = Literal["uncertainty", "margin", "entropy", "random"]


class Stability(ApiModel):
    """When predictions count as stable: the stopping rule's thresholds."""

    agreement: Annotated[float, Field(ge=0, le=1)] = 0.99
    """Cohen's kappa between consecutive versions' labels on the unlabelled tasks from which
    a version change counts as stable."""
    version_changes: Annotated[int, Field(ge=1, le=10)] = 3
    """Stable version changes in a row after which further labels are changing few
    predictions."""


class ActiveLearning(ApiModel):
    """Which unlabelled tasks annotators see first, and when more labels stop paying."""

    strategy: ActiveLearningStrategy = "entropy"
    """Order: highest entropy of the label distribution first, least confident first
    (uncertainty), smallest gap between the two likeliest labels first (margin), or random.
    Entropy by default: on DynaSent it saved the most labels against random (`make
    bench-al`); margin's savings were not distinguishable from none. Before any fine-tuned
    version serves,
    the first batch is a seeded random sample (cold start); with embeddings from the prelabel
    server, a batch takes the most informative task of each of its clusters."""
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 100
    """Tasks prelabelled and queued per batch."""
    stability: Stability = Field(default_factory=Stability)
    """The stopping rule, published as `status.stopping`."""


class Prelabel(ApiModel):
    """Prelabelling of the remaining tasks by the project's PrelabelService."""

    service_ref: LocalObjectReference
    """The PrelabelService whose active version prelabels this project."""
    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    """The address at which Label Studio and the operator reach the prelabel service, e.g.
    for an external Label Studio server outside the cluster; by default the PrelabelService's
    stable in-cluster Service URL. Label Studio wants an IP address or a host name with a dot
    that resolves."""
    active_learning: ActiveLearning = Field(default_factory=ActiveLearning)
    """Order in which tasks are prelabelled and queued."""


class AnnotationProjectSpec(ApiModel):
    """Desired state of an AnnotationProject."""

    label_studio: LabelStudioSource
    """The Label Studio server: managed by the operator or external."""
    credentials_secret_ref: SecretKeySelector
    """Secret key holding the Label Studio API token (generated for a managed server when
    absent)."""
    project: ProjectSettings
    """Title, description and label config of the Label Studio project."""
    data: DataSource | None = None
    """Tasks to import into the project."""
    quality: Quality | None = None
    """Quality rules on the annotations."""
    annotators: Annotators = Field(default_factory=Annotators)
    """Annotator accuracy tiers."""
    training: Training | None = None
    """Automatic fine-tuning rounds."""
    prelabel: Prelabel | None = None
    """Prelabels from a PrelabelService and the active-learning order."""


# --- status -------------------------------------------------------------------------------


class LabelStudioStatus(ApiModel):
    """What the operator knows about the Label Studio server and project."""

    url: str | None = None
    """URL the operator uses to reach Label Studio."""
    project_id: Annotated[int, Field(ge=0)] | None = None
    """Id of the Label Studio project."""
    replicas: Annotated[int, Field(ge=0)] | None = None
    """Replicas of a managed server."""
    ready_replicas: Annotated[int, Field(ge=0)] | None = None
    """Ready replicas of a managed server."""


class Counts(ApiModel):
    """Counts re-read from Label Studio on every reconcile."""

    tasks: Annotated[int, Field(ge=0)] = 0
    """Tasks in the project."""
    annotated_tasks: Annotated[int, Field(ge=0)] = 0
    """Tasks with at least one annotation."""
    annotations: Annotated[int, Field(ge=0)] = 0
    """Annotations in the project (skipped and cancelled ones excluded)."""
    since_last_training: Annotated[int, Field(ge=0)] = 0
    """Annotations made after the last training round's snapshot."""


class ImportStatus(ApiModel):
    """Outcome of importing `spec.data`."""

    imported: Annotated[int, Field(ge=0)] = 0
    """Tasks imported so far (each once)."""
    malformed: Annotated[int, Field(ge=0)] = 0
    """Rows that could not be read as tasks."""
    message: str | None = None
    """The first problems found, for a person."""


class QualityViolation(ApiModel):
    """A quality rule that the current annotations break."""

    label: str
    """The label concerned."""
    share: Share
    """Its current share of annotations."""
    bound: Literal["maxShare", "minShare"]
    """Which bound is broken."""
    limit: Share
    """The bound's value."""


class Disagreement(ApiModel):
    """An annotation that contradicts a confident prelabel of its task, for review."""

    task_id: Annotated[int, Field(ge=0)]
    """Label Studio task id."""
    annotation_id: Annotated[int, Field(ge=0)]
    """Label Studio annotation id."""
    annotator: str
    """Label Studio user id of the annotator."""
    labels: Annotated[list[str], Field(max_length=1024)] = []
    """What the annotator chose."""
    prelabel: Annotated[list[str], Field(max_length=1024)] = []
    """What the prelabel said."""
    score: Share
    """The prelabel's score."""


class AnnotatorStatus(ApiModel):
    """One annotator's measured quality."""

    annotator: str
    """Label Studio user id or e-mail."""
    annotations: Annotated[int, Field(ge=0)]
    """Annotations counted."""
    accuracy: Share | None = None
    """Agreement with consensus and gold labels; unset until enough overlap exists."""
    tier: Literal["expert", "standard", "basic", "unrated"]
    """Routing tier from `spec.annotators.routing`."""


class VersionAcceptance(ApiModel):
    """How annotators treated one model version's prelabels."""

    model_version: str
    """The version that made the prelabels."""
    accepted: Annotated[int, Field(ge=0)]
    """Annotations that kept the prelabel's labels unchanged."""
    reviewed: Annotated[int, Field(ge=0)]
    """Annotations of tasks that showed one of its prelabels."""


class PrelabelStatus(ApiModel):
    """Prelabels pushed into Label Studio by the operator, in active-learning order."""

    service: str
    """The PrelabelService named by spec.prelabel.serviceRef."""
    url: str | None = None
    """Where Label Studio and the operator reach it (the project's ML backend URL)."""
    model_version: str | None = None
    """Its active version, whose predictions are pushed; unset until one is active."""
    ml_backend_id: Annotated[int, Field(ge=0)] | None = None
    """Id of the project's ML backend in Label Studio."""
    predicted_tasks: Annotated[int, Field(ge=0)] = 0
    """Unlabelled tasks holding a prediction of modelVersion."""
    pending_tasks: Annotated[int, Field(ge=0)] = 0
    """Unlabelled tasks still waiting for one (a batch goes in per reconcile)."""
    last_batch: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=100)] = []
    """Task ids of the latest batch pushed, the most informative first (the first 100)."""
    acceptance: Annotated[list[VersionAcceptance], Field(max_length=100)] = []
    """Per model version, how many of its prelabels annotators kept: the PrelabelService's
    prelabelAccuracy, which rolls a canary back below rollout.minPrelabelAccuracy."""


class TaskAgreement(ApiModel):
    """One task's agreement among its annotators."""

    task_id: Annotated[int, Field(ge=0)]
    """Label Studio task id."""
    agreement: Share
    """Share of its annotators who gave the most frequent answer."""
    annotators: Annotated[int, Field(ge=2)]
    """How many annotators answered it."""


class AgreementSummary(ApiModel):
    """Per-task agreement over the tasks with two or more annotators."""

    tasks: Annotated[int, Field(ge=0)] = 0
    """Tasks with two or more annotators."""
    unanimous: Annotated[int, Field(ge=0)] = 0
    """Tasks on which every annotator gave the same answer."""
    majority: Annotated[int, Field(ge=0)] = 0
    """Tasks on which more than half, but not all, gave the top answer."""
    split: Annotated[int, Field(ge=0)] = 0
    """Tasks on which no answer had more than half of the annotators."""
    lowest: Annotated[list[TaskAgreement], Field(max_length=100)] = []
    """The tasks of lowest agreement (at most 10), lowest first, worth a reviewer's look."""


class RelabelSuspects(ApiModel):
    """Labelled tasks worth an expert's second look, in the Data Manager view
    `labelloop: relabel suspects`."""

    total: Annotated[int, Field(ge=0)] = 0
    """Suspect tasks (a task with both signals counts once)."""
    contradicted: Annotated[int, Field(ge=0)] = 0
    """Tasks whose answer a confident prelabel contradicts."""
    split: Annotated[int, Field(ge=0)] = 0
    """Tasks whose annotators split (no answer won more than half of them)."""


class StoppingSignal(ApiModel):
    """Whether further labels still change the model's predictions (stabilising
    predictions: consecutive versions agreeing on the unlabelled tasks)."""

    prediction_agreement: Annotated[float, Field(ge=-1, le=1)] | None = None
    """Cohen's kappa between the last two versions' labels on the unlabelled tasks."""
    agreements: Annotated[list[Annotated[float, Field(ge=-1, le=1)]], Field(max_length=10)] = []
    """The kappas of the latest version changes, oldest first."""
    stable: bool = False
    """The last `stability.versionChanges` version changes agreed at `stability.agreement` or
    more: further labels are changing few predictions."""
    message: str = ""
    """The signal in words."""


class AnnotationProjectStatus(CommonStatus):
    """Observed state of an AnnotationProject."""

    label_studio: LabelStudioStatus | None = None
    """Server and project."""
    task_type: Literal["single-label", "multi-label", "ner"] | None = None
    """Task type derived from the label config."""
    labels: Annotated[list[str], Field(max_length=1024)] = []
    """Label set derived from the label config."""
    counts: Counts | None = None
    """Tasks and annotations."""
    import_: Annotated[ImportStatus | None, Field(alias="import")] = None
    """Outcome of importing spec.data."""
    label_distribution: dict[str, Annotated[int, Field(ge=0)]] = {}
    """Annotations per label."""
    quality_violations: Annotated[list[QualityViolation], Field(max_length=64)] = []
    """Quality rules currently broken."""
    disagreements: Annotated[list[Disagreement], Field(max_length=100)] = []
    """Annotations contradicting a confident prelabel (the first 100); the Data Manager view
    `labelloop: prelabel disagreements` shows their tasks."""
    disagreement_count: Annotated[int, Field(ge=0)] = 0
    """How many annotations contradict a confident prelabel."""
    annotators: Annotated[list[AnnotatorStatus], Field(max_length=10000)] = []
    """Accuracy and tier of each annotator."""
    rounds: Annotated[int, Field(ge=0)] = 0
    """Training rounds started."""
    last_fine_tune_job: Annotated[str, Field(pattern=DNS_LABEL)] | None = None
    """Name of the FineTuneJob of the latest round."""
    last_training_time: str | None = None
    """When the latest round started (RFC 3339)."""
    last_annotation_id: Annotated[int, Field(ge=0)] | None = None
    """Snapshot cut-off of the latest round: the newest annotation it includes."""
    agreement: Share | None = None
    """Mean agreement of tasks with two or more annotations (share giving the top answer)."""
    task_agreement: AgreementSummary | None = None
    """How agreement spreads over the tasks, and the least agreed ones."""
    prelabels: PrelabelStatus | None = None
    """Prelabels pushed from spec.prelabel's PrelabelService."""
    relabel_suspects: RelabelSuspects | None = None
    """Labelled tasks a confident prelabel contradicts or whose annotators split."""
    stopping: StoppingSignal | None = None
    """Whether further labels still change the predictions."""
