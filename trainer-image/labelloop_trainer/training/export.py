"""`export`: a Label Studio project's annotations up to a cut-off, as a training file.

A FineTuneJob trains on a snapshot: the annotations whose id is at most the round's
`lastAnnotationId`, which the operator fixed when it started the round. Annotations made
after it belong to the next round, even when they arrive while this one exports, so the
same job always sees the same data. Label Studio numbers annotations in creation order, so
the cut-off is a plain comparison.

Per task, the annotations up to the cut-off are read with the project's label config
(`read_result`); skipped ones (`was_cancelled`) and single-label ones without a choice carry
no answer. Then one answer per task:

1. a ground-truth annotation, when the task has one (the newest, if several): a reviewer
   marked it as the reference;
2. otherwise the answer most annotators gave (a label, a label set, or a set of spans, each
   compared as a whole);
3. a tie goes to the tied answer of the newest annotation (the highest id): the latest
   judgement, and the same answer on every run. Ties are counted in the manifest.

The file is JSON Lines, one task a line: the text under the label config's data key, the
answer under `label`, `labels` or `spans` (as `train` reads them) and the task and
annotation ids. Beside it, `<name>.manifest.json` records the source and cut-off, the label
config, the counts, what was skipped and why, and a `sha256:` hash of the file. Both are
written to temporary files and renamed into place.

Only `LabelStudioReader` (`label_studio.py`) talks to Label Studio; the token comes from
`LABEL_STUDIO_API_KEY` and never appears in a message (the reader redacts it from Label
Studio's answers too).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelloop.api.jobfile import LabelStudioSource
from labelloop.api.labelconfig import (
    LabelConfigError,
    LabelSchema,
    Span,
    TaskType,
    parse_label_config,
    read_result,
)
from labelloop_trainer.errors import BadInputError, TrainerError
from labelloop_trainer.training.label_studio import (
    ExportedTask,
    LabelStudioFailure,
    LabelStudioReader,
    NotFound,
    Refused,
    Unreachable,
)
from labelloop_trainer.training.settings import DEFAULT_FIELDS, DataSettings, data_settings

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
EXPORT_FILE = "dataset.jsonl"

Answer = str | tuple[str, ...] | tuple[tuple[int, int, str], ...]
"""One annotation's answer: a label, a sorted label set, or sorted (start, end, label) spans."""


class LabelStudioUnavailable(TrainerError):
    """Label Studio did not answer; the run may succeed later (exit 1)."""


@dataclass(frozen=True)
class Source:
    """Annotations to export: a Label Studio project, and the last annotation id to include."""

    url: str
    project_id: int
    last_annotation_id: int | None
    """None: every annotation there is now (the export's manifest records the newest id)."""

    @classmethod
    def from_api(cls, source: LabelStudioSource) -> Source:
        """The job file's `dataset.labelStudio`."""
        return cls(source.url, source.project_id, source.last_annotation_id)

    def to_json(self) -> dict[str, Any]:
        """The form of the job file's `dataset.labelStudio`."""
        return {
            "url": self.url,
            "projectId": self.project_id,
            "lastAnnotationId": self.last_annotation_id,
        }


@dataclass
class Resolved:
    """The answers chosen for a project's tasks, and how they were chosen."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Annotations left out, by reason (after_cutoff, cancelled, no_answer, ...)."""
    dropped_tasks: Counter[str] = field(default_factory=Counter)
    """Tasks that gave no row, by reason (no_annotation, missing_text)."""
    ties: int = 0
    ground_truth: int = 0
    last_included: int | None = None


def answer_field(schema: LabelSchema) -> str:
    """The column of the answer: the field `train` reads by default for the task type."""
    return DEFAULT_FIELDS[schema.task_type][1]


def answer_of(schema: LabelSchema, result: Sequence[dict[str, Any]]) -> Answer | None:
    """An annotation's answer for `schema`'s control; None when it carries none.

    An empty label set (multi-label) and no spans (NER) are answers ("none applies"); a
    single-label annotation without exactly one choice is not.
    """
    values = read_result(schema, result)
    if schema.task_type is TaskType.NER:
        spans = [v for v in values if isinstance(v, Span)]
        return tuple(sorted((s.start, s.end, s.label) for s in spans))
    labels = [v for v in values if isinstance(v, str)]
    if schema.task_type is TaskType.SINGLE_LABEL:
        return labels[0] if len(labels) == 1 else None
    return tuple(sorted(set(labels)))


def choose(votes: Sequence[tuple[int, Answer]]) -> tuple[Answer, bool]:
    """The majority answer of (annotation id, answer) votes, and whether it was a tie.

    A tie goes to the tied answer of the highest annotation id.
    """
    counts = Counter(answer for _, answer in votes)
    top = max(counts.values())
    tied = {answer for answer, n in counts.items() if n == top}
    newest = max((i, a) for i, a in votes if a in tied)
    return newest[1], len(tied) > 1


def resolve(schema: LabelSchema, tasks: Sequence[ExportedTask], cutoff: int | None) -> Resolved:
    """One row per task that has an answer up to `cutoff` (see the module docstring)."""
    out = Resolved()
    for task in sorted(tasks, key=lambda t: t.id):
        votes: list[tuple[int, Answer]] = []
        truths: list[tuple[int, Answer]] = []
        for annotation in task.annotations:
            if cutoff is not None and annotation.id > cutoff:
                out.skipped["after_cutoff"] += 1
                continue
            if annotation.was_cancelled:
                out.skipped["cancelled"] += 1
                continue
            answer = answer_of(schema, annotation.result)
            if answer is None:
                out.skipped["no_answer"] += 1
                continue
            votes.append((annotation.id, answer))
            if annotation.ground_truth:
                truths.append((annotation.id, answer))
        if not votes:
            out.dropped_tasks["no_annotation"] += 1
            continue
        text = task.data.get(schema.data_key)
        if not isinstance(text, str):
            out.dropped_tasks["missing_text"] += 1
            continue
        if truths:
            chosen, tie = max(truths)[1], False
            out.ground_truth += 1
        else:
            chosen, tie = choose(votes)
        out.ties += tie
        ids = sorted(i for i, _ in votes)
        out.last_included = max(ids[-1], out.last_included or 0)
        out.rows.append(
            {
                schema.data_key: text,
                answer_field(schema): _answer_json(chosen),
                "taskId": task.id,
                "annotationIds": ids,
            }
        )
    return out


def _answer_json(answer: Answer) -> Any:
    if isinstance(answer, str):
        return answer
    return [
        {"start": a[0], "end": a[1], "label": a[2]} if isinstance(a, tuple) else a for a in answer
    ]


def manifest_path(dataset: Path) -> Path:
    """`<dir>/<stem>.manifest.json` beside the dataset file."""
    return dataset.with_name(f"{dataset.stem}.manifest.json")


def token_from_env() -> str:
    """The Label Studio token; exit 2 naming the variable when it is not set."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise BadInputError(f"{TOKEN_ENV}: not set; it must hold the Label Studio API token")
    return token


def export(source: Source, token: str, output: Path) -> dict[str, Any]:
    """Write the dataset file and its manifest; return the manifest."""
    where = f"Label Studio project {source.project_id} at {source.url}"
    try:
        with LabelStudioReader(source.url, token) as reader:
            project = reader.project(source.project_id)
            tasks = reader.annotated_tasks(source.project_id)
    except Refused as err:
        raise BadInputError(f"{TOKEN_ENV}: {err}") from None
    except NotFound:
        raise BadInputError(f"projectId: {where} does not exist") from None
    except Unreachable as err:
        raise LabelStudioUnavailable(f"{where}: unreachable: {err}") from None
    except LabelStudioFailure as err:
        raise LabelStudioUnavailable(f"{where}: export failed: {err}") from None
    try:
        schema = parse_label_config(project.label_config)
    except LabelConfigError as err:
        raise BadInputError(f"{where}: its label config cannot be trained on: {err}") from None
    if schema.data_key in (answer_field(schema), "taskId", "annotationIds"):
        raise BadInputError(
            f"{where}: the label config reads the task field {schema.data_key!r}, "
            "which the export uses for its own column"
        )
    cutoff = source.last_annotation_id
    resolved = resolve(schema, tasks, cutoff)
    if not resolved.rows:
        upto = "" if cutoff is None else f" up to lastAnnotationId {cutoff}"
        raise BadInputError(
            f"{where}: no usable annotation{upto} "
            f"(skipped: {dict(resolved.skipped) or 'none'}; "
            f"tasks without one: {dict(resolved.dropped_tasks) or 'none'})"
        )
    content = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in resolved.rows)
    column = answer_field(schema)
    counts = Counter(label for row in resolved.rows for label in _labels(row[column]))
    manifest = {
        "source": {"labelStudio": source.to_json()},
        "lastAnnotationId": cutoff if cutoff is not None else resolved.last_included,
        "lastIncludedAnnotationId": resolved.last_included,
        "count": len(resolved.rows),
        "taskType": schema.task_type.value,
        "labels": list(schema.labels),
        "labelCounts": {label: counts.get(label, 0) for label in schema.labels},
        "textField": schema.data_key,
        "labelField": column,
        "labelConfig": project.label_config,
        "hash": f"sha256:{hashlib.sha256(content.encode()).hexdigest()}",
        "skippedAnnotations": dict(sorted(resolved.skipped.items())),
        "droppedTasks": dict(sorted(resolved.dropped_tasks.items())),
        "ties": resolved.ties,
        "groundTruth": resolved.ground_truth,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(output, content)
    _write_atomically(manifest_path(output), json.dumps(manifest, indent=2) + "\n")
    return manifest


def _labels(answer: Any) -> list[str]:
    if isinstance(answer, str):
        return [answer]
    return [a["label"] if isinstance(a, dict) else a for a in answer]


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def exports_dir(output_dir: Path, model_version: str) -> Path:
    """`<outputDir>/.exports/<modelVersion>/`, where a job's export is kept for restarts."""
    return output_dir / ".exports" / model_version


def materialise(source: Source, work_dir: Path) -> DataSettings:
    """The data settings of the export of `source`, exporting it unless done before.

    A restarted pod finds the export of its first attempt and trains on the same snapshot
    (its checkpoints name the data's hash). The processes of a node take turns under a
    file lock, so the first exports and the others read what it wrote.
    """
    dataset = work_dir / EXPORT_FILE
    with _locked(work_dir / ".lock"):
        manifest = _read_manifest(dataset, source)
        if manifest is None:
            manifest = export(source, token_from_env(), dataset)
    return data_settings(
        dataset,
        text_field=manifest["textField"],
        label_field=manifest["labelField"],
        label_config=manifest["labelConfig"],
        source=dataset_source(manifest, dataset),
    )


def dataset_source(manifest: Mapping[str, Any], dataset: Path) -> dict[str, Any]:
    """What a version trained on an export records as its `dataset.json` source: the
    project and the cut-off (the newest annotation included when none was given)."""
    project = manifest["source"]["labelStudio"]
    return {
        "labelStudio": {**project, "lastAnnotationId": manifest["lastAnnotationId"]},
        "export": str(dataset),
        "exportHash": manifest["hash"],
    }


def _read_manifest(dataset: Path, source: Source) -> Mapping[str, Any] | None:
    """The manifest of an earlier export of `source` into `dataset`, if it is complete."""
    try:
        manifest: dict[str, Any] = json.loads(manifest_path(dataset).read_text(encoding="utf-8"))
        content = dataset.read_bytes()
    except (OSError, json.JSONDecodeError):
        return None
    same = manifest.get("source") == {"labelStudio": source.to_json()}
    intact = manifest.get("hash") == f"sha256:{hashlib.sha256(content).hexdigest()}"
    return manifest if same and intact else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
