"""The trainer's job file: what the operator hands a FineTuneJob's pods (`--config`).

One model for both sides of docs/trainer-contract.md: the operator builds it
(`resources/training.py`) and writes its JSON into the Job's ConfigMap; the trainer
(`labelloop_trainer`) validates the file with the very same model, so the FineTuneJob's
`spec`, its defaults and its ranges are defined once, in `finetunejob.py`. The file is not an
API object (no CRD is generated from it); the invariants' CEL only documents the rule.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from .base import ApiModel, Invariant, exactly_one_set
from .finetunejob import FineTuneJobSpec
from .labelconfig import TaskType

Path = Annotated[str, Field(min_length=1, max_length=4096)]
FieldName = Annotated[str, Field(min_length=1, max_length=256)]
_FILE_ONLY = ("text_field", "label_field", "task_type", "labels", "label_config")


class LabelStudioSource(ApiModel):
    """A Label Studio project whose annotations, up to a cut-off, the trainer exports."""

    url: Annotated[str, Field(min_length=1, max_length=2048)]
    """The Label Studio server, as the trainer's pod reaches it."""
    project_id: Annotated[int, Field(ge=1)]
    """The project."""
    last_annotation_id: Annotated[int, Field(ge=0)] | None = None
    """The cut-off: the newest annotation included; every annotation there is when unset."""


class JobDataset(ApiModel):
    """Where the data is, already resolved: a file, or a Label Studio project to export."""

    invariants = (
        Invariant(
            cel="has(self.path) != has(self.labelStudio)",
            message="set exactly one of path or labelStudio",
            holds=exactly_one_set("path", "label_studio"),
        ),
        Invariant(
            cel="!has(self.labelStudio) || !(has(self.textField) || has(self.labelField) || "
            "has(self.taskType) || has(self.labels) || has(self.labelConfig))",
            message="textField, labelField, taskType, labels and labelConfig describe a file "
            "(path); an export takes them from the project's label config",
            holds=lambda d: (
                d.label_studio is None or all(getattr(d, f) is None for f in _FILE_ONLY)
            ),
        ),
    )

    path: Path | None = None
    """A JSON, JSONL or CSV file of labelled examples."""
    text_field: FieldName | None = None
    """Field holding the text; `text` when unset (or the label config's data key)."""
    label_field: FieldName | None = None
    """Field holding the answer; `label`, `labels` or `spans` by task type when unset."""
    task_type: TaskType | None = None
    """single-label (when unset), multi-label or ner."""
    labels: Annotated[list[FieldName], Field(max_length=4096)] | None = None
    """The allowed labels (entity types for NER); what the data uses when unset."""
    label_config: Annotated[str, Field(min_length=1)] | None = None
    """The project's Label Studio XML; sets the task type, the labels and the text field."""
    label_studio: LabelStudioSource | None = None
    """Export this project first, then train on the export."""


class JobFile(ApiModel):
    """The whole job file; keys in camelCase, as in the API."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """The FineTuneJob's name."""
    namespace: Annotated[str, Field(min_length=1, max_length=63)]
    """The FineTuneJob's namespace."""
    uid: Annotated[str, Field(min_length=1, max_length=128)]
    """The FineTuneJob's uid (live progress reports only to this very object)."""
    model_version: Annotated[str, Field(min_length=1, max_length=63)]
    """The version this run must produce, chosen by the operator."""
    spec: FineTuneJobSpec
    """The FineTuneJob's spec, with every default filled in."""
    dataset: JobDataset
    """Where the data is."""
    output_dir: Path
    """The local directory of `spec.output.uri`."""
    base_model_dir: Path
    """The local directory of `spec.baseModel.uri`."""
    previous_version_dir: Path | None = None
    """The directory of the version now serving, for `promotion.mustImprove`."""

    def to_json(self) -> dict[str, Any]:
        """The file's JSON: unset fields left out, except the export's cut-off, which is
        written even when null (every annotation there is)."""
        data = self.to_wire()
        if self.dataset.label_studio is not None:
            data["dataset"]["labelStudio"]["lastAnnotationId"] = (
                self.dataset.label_studio.last_annotation_id
            )
        return data
