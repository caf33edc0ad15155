"""Immutable model versions on disk, their loader, and the one-line result.

A version directory is written under a temporary sibling name and renamed into place, so a
directory named like a version is always complete, even after a crash mid-write; and since
an existing version is refused (exit 3), a version name means one model forever, which is
what a rollback to it relies on. Layout of `<output>/<version>/`:

    adapter/           PEFT adapter and trained head (adapter_config.json, *.safetensors)
    tokenizer/         the tokenizer, as used in training
    label_map.json     task type, labels, output names by id, fields, max sequence length
    metrics.json       the best epoch's metrics and the promotion verdict
    dataset.json       the dataset manifest (count, labels, hash, cleaning report)
    config.json        the resolved training configuration
    base_model.json    the base model this adapter belongs to
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.errors import BadInputError, VersionExistsError
from labelloop_trainer.training.modeling import (
    TaskModel,
    base_model,
    load_tokenizer,
    with_adapter,
)

RESULT_LIMIT = 4096
"""Kubernetes keeps at most 4 KiB of a termination message."""
DEFAULT_RESULT_FILE = Path("/dev/termination-log")


def derive_version(stem: str, dataset_hash: str, identity: str) -> str:
    """A version name for runs that were not given one: the data's name and a content hash.

    Same data and settings give the same name, so a repeated run is recognised (exit 3)
    and an interrupted one resumes, instead of training a duplicate.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:40] or "model"
    digest = hashlib.sha256(f"{dataset_hash}\n{identity}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


def check_new(output_dir: Path, version: str) -> Path:
    """The version's directory, which must not exist yet."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", version):
        raise BadInputError(
            f"modelVersion: {version!r} must be letters, digits, '.', '_' or '-' (at most 128)"
        )
    target = output_dir / version
    if target.exists():
        raise VersionExistsError(f"model version {version} already exists at {target}")
    return target


def write_version(
    output_dir: Path,
    version: str,
    model: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    documents: Mapping[str, Any],
) -> Path:
    """Write a complete version directory atomically; `documents` are the JSON files."""
    target = check_new(output_dir, version)
    staging = output_dir / f".{version}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(str(staging / "adapter"))
    tokenizer.save_pretrained(str(staging / "tokenizer"))
    for name, document in documents.items():
        (staging / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    try:
        staging.rename(target)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise VersionExistsError(f"model version {version} appeared at {target} meanwhile") from err
    return target


@dataclass(frozen=True)
class LoadedVersion:
    """A version ready for inference."""

    model: TaskModel
    tokenizer: PreTrainedTokenizerBase
    label_map: dict[str, Any]


def read_label_map(version_dir: Path) -> dict[str, Any]:
    """A version's `label_map.json`: its task type, labels and fields."""
    try:
        label_map: dict[str, Any] = json.loads(
            (version_dir / "label_map.json").read_text(encoding="utf-8")
        )
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"model: {version_dir} is not a model version: {err}") from err
    return label_map


def load_version(
    version_dir: Path, base_model_dir: Path | None = None, device: str | None = None
) -> LoadedVersion:
    """The model (adapter merged into the base, in eval mode), tokenizer and label map.

    `base_model_dir` overrides where the base model is looked for (a volume may be mounted
    elsewhere than where the version was trained).
    """
    label_map = read_label_map(version_dir)
    try:
        base = json.loads((version_dir / "base_model.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"model: {version_dir} is not a model version: {err}") from err
    task_type = TaskType(label_map["taskType"])
    model = base_model(Path(base_model_dir or base["dir"]), task_type, label_map["outputNames"])
    merged = with_adapter(model, version_dir / "adapter").merge_and_unload()
    assert isinstance(merged, TaskModel)
    module: torch.nn.Module = merged
    module.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    module.eval()
    return LoadedVersion(merged, load_tokenizer(version_dir / "tokenizer"), label_map)


def write_result(result: Mapping[str, Any]) -> str:
    """Write the result line to `LABELLOOP_RESULT_FILE` and return it.

    Without the variable the default `/dev/termination-log` is used only where it exists
    (Kubernetes creates it), so a run on a workstation never creates files in `/dev`. Past
    4 KiB the metrics are cut down to the contract's two, then dropped.
    """
    payload = dict(result)
    line = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if len(line.encode()) > RESULT_LIMIT:
        metrics = payload.get("metrics", {})
        payload["metrics"] = {k: metrics[k] for k in ("accuracy", "macro_f1") if k in metrics}
        line = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    if len(line.encode()) > RESULT_LIMIT:
        payload.pop("metrics", None)
        payload["promotion"] = {"passed": payload.get("promotion", {}).get("passed", False)}
        line = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    configured = os.environ.get("LABELLOOP_RESULT_FILE")
    path = Path(configured) if configured else DEFAULT_RESULT_FILE
    if configured or path.exists():
        path.write_text(line + "\n", encoding="utf-8")
    return line
