"""The job file (`train --config`), read with the operator's own model of it.

`labelloop.api.jobfile.JobFile` is the model the operator serialises into the Job's
ConfigMap; validating the file with it checks the FineTuneJob `spec` against the same
defaults and ranges the API server enforces. Every problem names its field, in camelCase as
in the file (`spec.hyperparameters.learningRate: …`), and exits 2. Reading is all this
does: a `dataset.labelStudio` is exported by the command that trains (`run.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from labelloop.api.jobfile import JobDataset, JobFile
from labelloop_trainer.errors import BadInputError, invalid
from labelloop_trainer.training.settings import (
    DataSettings,
    Hyperparameters,
    JobRef,
    LoraSettings,
    Promotion,
    TrainConfig,
    Tuning,
    data_settings,
    parse_task_type,
)


def read(path: Path) -> JobFile:
    """The job file at `path`, validated."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise BadInputError(f"--config: cannot read {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise BadInputError(f"--config: {path} is not JSON: {err}") from err
    return parse(content)


def parse(content: object) -> JobFile:
    """A job file's content, validated."""
    if not isinstance(content, dict):
        raise BadInputError(f"job file: expected an object, got {type(content).__name__}")
    try:
        return JobFile.model_validate(content)
    except ValidationError as err:
        raise invalid(err) from None


def file_data(dataset: JobDataset) -> DataSettings:
    """The settings of a file `dataset` (one with a `path`)."""
    if dataset.path is None:
        raise BadInputError("dataset.path: a Label Studio dataset is exported first")
    return data_settings(
        Path(dataset.path),
        text_field=dataset.text_field,
        label_field=dataset.label_field,
        task_type=parse_task_type(dataset.task_type or "single-label", "dataset.taskType"),
        labels=dataset.labels,
        label_config=dataset.label_config,
    )


def train_config(job: JobFile, data: DataSettings) -> TrainConfig:
    """The run `job` describes, on `data` (the file, or the export of the project)."""
    spec = job.spec
    gate = spec.evaluation.promotion
    previous = job.previous_version_dir
    return TrainConfig(
        data=data,
        base_model_dir=Path(job.base_model_dir),
        output_dir=Path(job.output_dir),
        model_version=job.model_version,
        hyper=Hyperparameters.from_api(
            spec.hyperparameters, monitor=spec.hyperparameters.early_stopping.monitored(gate)
        ),
        lora=LoraSettings.from_api(spec.method.lora),
        metrics=tuple(spec.evaluation.metrics),
        promotion=None if gate is None else Promotion.from_api(gate),
        previous_version_dir=None if previous is None else Path(previous),
        artifact_uri=spec.output.uri,
        job=JobRef(job.name, job.namespace, job.uid),
        tuning=None
        if spec.tuning is None
        else Tuning.from_api(spec.tuning, objective=spec.tuning.objective_metric(gate)),
    )
