"""The resolved training configuration, parsed in exactly one place.

The operator hands the trainer a job file (a FineTuneJob `spec` with its defaults filled in,
camelCase as in the API); a person hands it command-line flags. Both become one frozen
`TrainConfig`, so the training code never reads a dict and a later switch from the plain
`spec` dict to the operator's API models only touches `from_job`. Every check here raises
`BadInputError` naming the offending field, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelloop.api.labelconfig import TaskType, parse_label_config
from labelloop_trainer.errors import BadInputError

SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
)
DEFAULT_FIELDS = {
    TaskType.SINGLE_LABEL: ("text", "label"),
    TaskType.MULTI_LABEL: ("text", "labels"),
    TaskType.NER: ("text", "spans"),
}


@dataclass(frozen=True)
class DataSettings:
    """Where the examples are and how to read them."""

    path: Path
    text_field: str = "text"
    label_field: str = "label"
    task_type: TaskType = TaskType.SINGLE_LABEL
    labels: tuple[str, ...] | None = None
    """The allowed labels (entity types for NER); inferred from the data when unset."""
    source: Mapping[str, Any] | None = None
    """Where the file came from when the trainer made it (a Label Studio project and its
    cut-off), for the version's `dataset.json`; None: the file is the source."""


@dataclass(frozen=True)
class Source:
    """Annotations to export: a Label Studio project, and the last annotation id to include."""

    url: str
    project_id: int
    last_annotation_id: int | None = None
    """None: every annotation there is now (the export's manifest records the newest id)."""

    def to_json(self) -> dict[str, Any]:
        """The form of the job file's `dataset.labelStudio`."""
        return {
            "url": self.url,
            "projectId": self.project_id,
            "lastAnnotationId": self.last_annotation_id,
        }


@dataclass(frozen=True)
class JobRef:
    """The FineTuneJob a run belongs to, whose status shows its live progress."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class LoraSettings:
    """PEFT LoRA settings; empty `target_modules` picks them from the architecture."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hyperparameters:
    """Optimisation settings, with the API's defaults."""

    learning_rate: float = 3e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    epochs: int = 3
    batch_size: int | None = None
    """Per-process batch size; None is `auto`."""
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.0
    max_sequence_length: int = 256
    seed: int = 42
    eval_split: float = 0.2
    patience: int = 3
    monitor: str = "eval_loss"
    """Early-stopping metric (API names such as `f1` are accepted)."""


@dataclass(frozen=True)
class Promotion:
    """The gate a new version must pass before it is rolled out."""

    metric: str = "f1"
    minimum: float = 0.0
    must_improve: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs, resolved."""

    data: DataSettings
    base_model_dir: Path
    output_dir: Path
    model_version: str | None
    """None: derived from the cleaned data and this configuration (see `output.py`)."""
    hyper: Hyperparameters = field(default_factory=Hyperparameters)
    lora: LoraSettings = field(default_factory=LoraSettings)
    metrics: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")
    """Metric names and `module:function` plug-ins to compute on the held-out split."""
    promotion: Promotion | None = None
    previous_version_dir: Path | None = None
    """The active version, for `mustImprove`."""
    artifact_uri: str | None = None
    """Where the output directory lives outside the pod (`spec.output.uri`)."""
    job: JobRef | None = None
    """The FineTuneJob (job file form only)."""

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready data (written to the version's `config.json`)."""
        data: dict[str, Any] = _jsonable(dataclasses.asdict(self))
        return data

    def identity(self) -> str:
        """A stable text of the settings that change the trained model (not the paths)."""
        data = self.to_json()
        for key in ("output_dir", "model_version", "previous_version_dir", "artifact_uri", "job"):
            data.pop(key)
        data["data"].pop("path")
        data["data"].pop("source")
        return json.dumps(data, sort_keys=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def label_schema_settings(xml: str) -> tuple[TaskType, str, tuple[str, ...]]:
    """Task type, text field and labels from a Label Studio label config."""
    try:
        schema = parse_label_config(xml)
    except ValueError as err:
        raise BadInputError(f"labelConfig: {err}") from err
    return schema.task_type, schema.data_key, schema.labels


# --- the job file (the contract form) --------------------------------------------------------


def load_job(path: Path) -> TrainConfig:
    """Read the job file the operator mounts (`--config`)."""
    try:
        job = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadInputError(f"--config: cannot read {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise BadInputError(f"--config: {path} is not JSON: {err}") from err
    return from_job(_mapping(job, "job file"))


def from_job(job: Mapping[str, Any]) -> TrainConfig:
    """Parse a job file's content; the keys are those of docs/trainer-contract.md.

    A `dataset.labelStudio` is exported (or its earlier export found) once everything else
    has been checked, and then read like a file dataset with the project's label config.
    """
    spec = _mapping(job.get("spec", {}), "spec")
    dataset = _mapping(job.get("dataset"), "dataset")
    hyper = _hyperparameters(_mapping(spec.get("hyperparameters", {}), "spec.hyperparameters"))
    method = _mapping(spec.get("method", {}), "spec.method")
    if method.get("type", "lora") != "lora":
        raise BadInputError(f"spec.method.type: {method.get('type')!r} is not allowed; use lora")
    lora = _lora(_mapping(method.get("lora", {}), "spec.method.lora"))
    evaluation = _mapping(spec.get("evaluation", {}), "spec.evaluation")
    metrics = tuple(
        _str(m, "spec.evaluation.metrics[]")
        for m in _list(evaluation.get("metrics", TrainConfig.metrics), "spec.evaluation.metrics")
    )
    promotion = _promotion(evaluation.get("promotion"))
    output = spec.get("output")
    previous = job.get("previousVersionDir")
    base_model_dir = Path(_str(job.get("baseModelDir"), "baseModelDir"))
    output_dir = Path(_str(job.get("outputDir"), "outputDir"))
    version = _str(job.get("modelVersion"), "modelVersion")
    identity = _job_ref(job)
    if "labelStudio" in dataset:
        from labelloop_trainer.training.export import exports_dir, materialise
        from labelloop_trainer.training.output import check_new

        source = label_studio_source(dataset["labelStudio"])
        check_new(output_dir, version)  # a finished job exits 3 without asking Label Studio
        dataset = materialise(source, exports_dir(output_dir, version))
    return validated(
        TrainConfig(
            data=_data_settings(dataset),
            base_model_dir=base_model_dir,
            output_dir=output_dir,
            model_version=version,
            hyper=hyper,
            lora=lora,
            metrics=metrics,
            promotion=promotion,
            previous_version_dir=None
            if previous is None
            else Path(_str(previous, "previousVersionDir")),
            artifact_uri=output.get("uri") if isinstance(output, Mapping) else None,
            job=identity,
        )
    )


def label_studio_source(raw: Any) -> Source:
    """The job file's `dataset.labelStudio`."""
    where = "dataset.labelStudio"
    fields = _mapping(raw, where)
    last = fields.get("lastAnnotationId")
    return Source(
        url=_str(fields.get("url"), f"{where}.url"),
        project_id=_int(fields.get("projectId"), f"{where}.projectId"),
        last_annotation_id=None if last is None else _int(last, f"{where}.lastAnnotationId"),
    )


def _job_ref(job: Mapping[str, Any]) -> JobRef | None:
    """The FineTuneJob's identity; None when the job file names none (no live status)."""
    name, namespace, uid = (job.get(key) for key in ("name", "namespace", "uid"))
    if not (isinstance(name, str) and isinstance(namespace, str) and isinstance(uid, str)):
        return None
    return JobRef(name, namespace, uid) if name and namespace and uid else None


def _data_settings(dataset: Mapping[str, Any]) -> DataSettings:
    """A file `dataset` of the job file (or the one an export produced)."""
    task_type = _task_type(dataset.get("taskType", TaskType.SINGLE_LABEL), "dataset.taskType")
    labels = _labels(dataset.get("labels"), "dataset.labels")
    text_default, label_default = DEFAULT_FIELDS[task_type]
    if "labelConfig" in dataset:
        task_type, text_default, labels = label_schema_settings(
            _str(dataset["labelConfig"], "dataset.labelConfig")
        )
        label_default = DEFAULT_FIELDS[task_type][1]
    source = dataset.get("source")
    return DataSettings(
        path=Path(_str(dataset.get("path"), "dataset.path")),
        text_field=_str(dataset.get("textField", text_default), "dataset.textField"),
        label_field=_str(dataset.get("labelField", label_default), "dataset.labelField"),
        task_type=task_type,
        labels=labels,
        source=None if source is None else _mapping(source, "dataset.source"),
    )


def _hyperparameters(raw: Mapping[str, Any]) -> Hyperparameters:
    where = "spec.hyperparameters"
    early = _mapping(raw.get("earlyStopping", {}), f"{where}.earlyStopping")
    default = Hyperparameters()
    batch = raw.get("batchSize", "auto")
    return Hyperparameters(
        learning_rate=_number(
            raw.get("learningRate", default.learning_rate), f"{where}.learningRate"
        ),
        lr_scheduler=_str(raw.get("lrScheduler", default.lr_scheduler), f"{where}.lrScheduler"),
        warmup_ratio=_number(raw.get("warmupRatio", default.warmup_ratio), f"{where}.warmupRatio"),
        epochs=_int(raw.get("epochs", default.epochs), f"{where}.epochs"),
        batch_size=None if batch == "auto" else _int(batch, f"{where}.batchSize"),
        gradient_accumulation_steps=_int(
            raw.get("gradientAccumulationSteps", 1), f"{where}.gradientAccumulationSteps"
        ),
        weight_decay=_number(raw.get("weightDecay", default.weight_decay), f"{where}.weightDecay"),
        max_sequence_length=_int(
            raw.get("maxSequenceLength", default.max_sequence_length), f"{where}.maxSequenceLength"
        ),
        seed=_int(raw.get("seed", default.seed), f"{where}.seed"),
        eval_split=_number(raw.get("evalSplit", default.eval_split), f"{where}.evalSplit"),
        patience=_int(early.get("patience", default.patience), f"{where}.earlyStopping.patience"),
        monitor=_str(early.get("metric", default.monitor), f"{where}.earlyStopping.metric"),
    )


def _lora(raw: Mapping[str, Any]) -> LoraSettings:
    where = "spec.method.lora"
    default = LoraSettings()
    return LoraSettings(
        r=_int(raw.get("r", default.r), f"{where}.r"),
        alpha=_int(raw.get("alpha", default.alpha), f"{where}.alpha"),
        dropout=_number(raw.get("dropout", default.dropout), f"{where}.dropout"),
        target_modules=tuple(
            _str(m, f"{where}.targetModules[]")
            for m in _list(raw.get("targetModules", []), f"{where}.targetModules")
        ),
    )


def _promotion(raw: Any) -> Promotion | None:
    if raw is None:
        return None
    where = "spec.evaluation.promotion"
    gate = _mapping(raw, where)
    must_improve = gate.get("mustImprove", True)
    if not isinstance(must_improve, bool):
        raise BadInputError(f"{where}.mustImprove: expected true or false, got {must_improve!r}")
    return Promotion(
        metric=_str(gate.get("metric", "f1"), f"{where}.metric"),
        minimum=_number(gate.get("minimum", 0.0), f"{where}.minimum"),
        must_improve=must_improve,
    )


def validated(cfg: TrainConfig) -> TrainConfig:
    """Check the ranges the API also enforces, so a CLI run fails as early and as clearly."""
    h = cfg.hyper
    checks = [
        (h.learning_rate > 0, "learningRate", "a number above 0"),
        (h.lr_scheduler in SCHEDULERS, "lrScheduler", f"one of {', '.join(SCHEDULERS)}"),
        (0 <= h.warmup_ratio <= 0.5, "warmupRatio", "between 0 and 0.5"),
        (h.epochs >= 1, "epochs", "an integer of at least 1"),
        (h.batch_size is None or h.batch_size >= 1, "batchSize", "a positive integer or auto"),
        (h.gradient_accumulation_steps >= 1, "gradientAccumulationSteps", "at least 1"),
        (h.weight_decay >= 0, "weightDecay", "at least 0"),
        (h.max_sequence_length >= 8, "maxSequenceLength", "at least 8"),
        (0 < h.eval_split <= 0.5, "evalSplit", "above 0 and at most 0.5"),
        (h.patience >= 1, "earlyStopping.patience", "at least 1"),
        (cfg.lora.r >= 1, "lora.r", "at least 1"),
        (cfg.lora.alpha >= 1, "lora.alpha", "at least 1"),
        (0 <= cfg.lora.dropout < 1, "lora.dropout", "at least 0 and below 1"),
    ]
    for ok, name, allowed in checks:
        if not ok:
            raise BadInputError(f"{name}: must be {allowed}")
    if cfg.data.labels is not None and len(set(cfg.data.labels)) != len(cfg.data.labels):
        raise BadInputError(f"labels: {list(cfg.data.labels)} has duplicates")
    return cfg


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadInputError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise BadInputError(f"{where}: expected a list, got {type(value).__name__}")
    return list(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadInputError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInputError(f"{where}: expected an integer, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInputError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _task_type(value: Any, where: str) -> TaskType:
    try:
        return TaskType(value)
    except ValueError as err:
        allowed = ", ".join(t.value for t in TaskType)
        raise BadInputError(f"{where}: {value!r} is not allowed; use one of {allowed}") from err


def _labels(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(_str(v, f"{where}[]") for v in _list(value, where))


def parse_task_type(value: str) -> TaskType:
    """The task type of a `--task-type` flag."""
    return _task_type(value, "--task-type")
