"""A round's training file written by the runner, for as long as the trainer's export fails.

The contract's form is `dataset.labelStudio`: the trainer exports the project up to the
round's cut-off itself. That export (trainer-image `export.py`) reads Label Studio's JSON
export, which lists a task's predictions as bare ids, and fails on them; a project of the loop
always carries prelabels. Until it reads such a project, the runner writes the snapshot as a
file: per task, the newest counted annotation up to the cut-off, under the label config's
data key and `label`. Delete this module and the two lines that call it once it does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..labelstudio.labelconfig import LabelSchema, TaskType
from ..labelstudio.models import Task
from ..loop.counting import counted, labels_of_result

LABEL_FIELD = "label"


def write_snapshot(tasks: Iterable[Task], schema: LabelSchema, cutoff: int, path: Path) -> int:
    """Write the snapshot to `path` (JSONL); return how many examples it holds."""
    if schema.task_type is TaskType.NER:
        raise ValueError("the local snapshot holds classification tasks only")
    rows: list[dict[str, Any]] = []
    for task in tasks:
        kept = [a for a in task.annotations if counted(a) and a.id <= cutoff]
        if not kept:
            continue
        labels = labels_of_result(schema, max(kept, key=lambda a: a.id).result)
        if not labels:
            continue
        answer: Any = labels if schema.task_type is TaskType.MULTI_LABEL else labels[0]
        rows.append({schema.data_key: task.data.get(schema.data_key), LABEL_FIELD: answer})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def dataset(path: Path, schema: LabelSchema, label_config: str) -> dict[str, Any]:
    """The job file's file `dataset` for the snapshot."""
    return {
        "path": str(path),
        "labelConfig": label_config,
        "textField": schema.data_key,
        "labelField": LABEL_FIELD,
    }
