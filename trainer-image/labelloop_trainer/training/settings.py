"""The resolved training configuration: what one run needs, typed and in snake_case.

It is filled from the API's models only (`labelloop.api.finetunejob`): from the job file's
`spec` (`jobfile.py`) or from the `train` command's flags (`cli.py`), which fall back to
the same models. So the CRD's defaults and ranges are the only ones: nothing here has a
default or a range of its own. The one choice made here is the task type's default field
names (`DEFAULT_FIELDS`), which belong to the data files, not to the API.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelloop.api import finetunejob as api
from labelloop.api.labelconfig import TaskType, parse_label_config
from labelloop_trainer.errors import BadInputError

DEFAULT_FIELDS = {
    TaskType.SINGLE_LABEL: ("text", "label"),
    TaskType.MULTI_LABEL: ("text", "labels"),
    TaskType.NER: ("text", "spans"),
}


@dataclass(frozen=True)
class DataSettings:
    """Where the examples are and how to read them."""

    path: Path
    text_field: str
    label_field: str
    task_type: TaskType
    labels: tuple[str, ...] | None
    """The allowed labels (entity types for NER); inferred from the data when None."""
    source: Mapping[str, Any] | None = None
    """Where the file came from when the trainer made it (a Label Studio project and its
    cut-off), for the version's `dataset.json`; None: the file is the source."""


@dataclass(frozen=True)
class JobRef:
    """The FineTuneJob a run belongs to, whose status shows its live progress."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class LoraSettings:
    """PEFT LoRA settings; empty `target_modules` picks them from the architecture."""

    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]

    @classmethod
    def from_api(cls, lora: api.LoraSettings) -> LoraSettings:
        return cls(lora.r, lora.alpha, lora.dropout, tuple(lora.target_modules))


@dataclass(frozen=True)
class Hyperparameters:
    """Optimisation settings (`spec.hyperparameters`)."""

    learning_rate: float
    lr_scheduler: str
    warmup_ratio: float
    epochs: int | None
    """None is `auto` (`loop.auto_epochs`)."""
    batch_size: int | None
    """Per-process batch size; None is `auto`."""
    gradient_accumulation_steps: int
    weight_decay: float
    max_sequence_length: int
    seed: int
    eval_split: float
    patience: int
    monitor: str
    """The metric that picks the epoch kept and ends training early (API names such as `f1`
    are accepted, and plug-ins' names)."""

    @classmethod
    def from_api(cls, h: api.Hyperparameters, *, monitor: str | None = None) -> Hyperparameters:
        """`h` as the trainer uses it. `monitor` overrides the API's choice
        (`EarlyStopping.monitored` without a gate); it may name the gate's metric or a plug-in
        metric, which the API's `earlyStopping.metric` cannot."""
        return cls(
            learning_rate=h.learning_rate,
            lr_scheduler=h.lr_scheduler,
            warmup_ratio=h.warmup_ratio,
            epochs=None if h.epochs == "auto" else int(h.epochs),
            batch_size=None if h.batch_size == "auto" else int(h.batch_size),
            gradient_accumulation_steps=h.gradient_accumulation_steps,
            weight_decay=h.weight_decay,
            max_sequence_length=h.max_sequence_length,
            seed=h.seed,
            eval_split=h.eval_split,
            patience=h.early_stopping.patience,
            monitor=monitor or h.early_stopping.monitored(None),
        )


@dataclass(frozen=True)
class Promotion:
    """The gate a new version must pass before it is rolled out."""

    metric: str
    minimum: float
    must_improve: bool

    @classmethod
    def from_api(cls, gate: api.Promotion, *, metric: str | None = None) -> Promotion:
        """`gate`; `metric` may name any computed metric (the API's is one of four)."""
        return cls(metric or gate.metric, gate.minimum, gate.must_improve)


@dataclass(frozen=True)
class Tuning:
    """A hyperparameter search inside the run (`spec.tuning`)."""

    trials: int
    objective: str
    """The metric maximised (API names such as `f1` are accepted, and plug-ins' names)."""
    learning_rate: tuple[float, float]
    """Smallest and largest learning rate, drawn on a log scale."""
    lora_r: tuple[int, ...]
    epochs: tuple[int, ...]
    batch_size: tuple[int, ...]
    """Empty: the configured batch size."""

    @classmethod
    def from_api(cls, tuning: api.Tuning, *, objective: str) -> Tuning:
        """`tuning`, maximising `objective` (`Tuning.objective_metric`, or a plug-in's)."""
        space = tuning.space
        return cls(
            trials=tuning.trials,
            objective=objective,
            learning_rate=(space.learning_rate.min, space.learning_rate.max),
            lora_r=tuple(space.lora_r),
            epochs=tuple(space.epochs),
            batch_size=tuple(space.batch_size),
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs, resolved."""

    data: DataSettings
    base_model_dir: Path
    output_dir: Path
    model_version: str | None
    """None: derived from the cleaned data and this configuration (see `output.py`)."""
    hyper: Hyperparameters
    lora: LoraSettings
    metrics: tuple[str, ...]
    """Metric names and `module:function` plug-ins to compute on the held-out split."""
    promotion: Promotion | None = None
    """None: no gate, every version passes."""
    previous_version_dir: Path | None = None
    """The active version, for `mustImprove`."""
    artifact_uri: str | None = None
    """Where the output directory lives outside the pod (`spec.output.uri`)."""
    job: JobRef | None = None
    """The FineTuneJob (job file form only)."""
    tuning: Tuning | None = None
    """None: one run with `hyper` and `lora`."""

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


def data_settings(
    path: Path,
    *,
    text_field: str | None = None,
    label_field: str | None = None,
    task_type: TaskType = TaskType.SINGLE_LABEL,
    labels: Sequence[str] | None = None,
    label_config: str | None = None,
    source: Mapping[str, Any] | None = None,
) -> DataSettings:
    """A data file's settings; a label config sets the task type, the labels and the text
    field, and unset fields are the task type's `DEFAULT_FIELDS`."""
    if label_config is not None:
        task_type, text_default, config_labels = label_schema_settings(label_config)
        labels = config_labels
    else:
        text_default = DEFAULT_FIELDS[task_type][0]
    if labels is not None and len(set(labels)) != len(labels):
        raise BadInputError(f"labels: {list(labels)} has duplicates")
    return DataSettings(
        path=path,
        text_field=text_field or text_default,
        label_field=label_field or DEFAULT_FIELDS[task_type][1],
        task_type=task_type,
        labels=None if labels is None else tuple(labels),
        source=source,
    )


def parse_task_type(value: str, where: str = "--task-type") -> TaskType:
    """The task type named `value`."""
    try:
        return TaskType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in TaskType)
        raise BadInputError(f"{where}: {value!r} is not allowed; use one of {allowed}") from None
