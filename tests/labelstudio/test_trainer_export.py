"""`labelloop_trainer export` and a FineTuneJob of an AnnotationProject, against the real
Label Studio server of the `label_studio` fixture, on DynaSent sentences annotated through the
API (DynaSent R1: Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, CC BY 4.0)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures.labelstudio import LabelStudioServer, free_port
from labelloop.api import FineTuneJobSpec
from labelloop.api.base import SecretKeySelector
from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.resources.common import Owner
from labelloop.resources.training import (
    LabelStudioExport,
    TrainingInputs,
    build_training_objects,
    model_version,
)
from labelloop_trainer.cli import main
from labelloop_trainer.training.export import Source, materialise
from paths import gold_sentences
from trainer.operator_job import run_job_locally
from trainer.support import build_tiny_model, fast_flags

pytestmark = [pytest.mark.labelstudio, pytest.mark.trainer]

SENTIMENT = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="sentiment" toName="text" choice="single">'
    '<Choice value="positive"/><Choice value="negative"/><Choice value="neutral"/>'
    "</Choices></View>"
)
SCHEMA = parse_label_config(SENTIMENT)
TASKS = 30
CUT_AFTER = 18  # annotations of the first 18 tasks are in the snapshot


@dataclass(frozen=True)
class Annotated:
    """A project whose tasks were each annotated once with DynaSent's gold label, in order,
    and whose first task then got two more annotations, from two other users, disagreeing."""

    url: str
    token: str
    project_id: int
    task_ids: list[int]
    gold: list[str]
    cutoff: int
    """The id of the annotation of task CUT_AFTER - 1."""
    overruled: str
    """The label the two later annotators gave the first task."""


@pytest.fixture(scope="module")
def annotated(label_studio: LabelStudioServer) -> Annotated:
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        project = client.create_project(f"export {secrets.token_hex(4)}", "", SENTIMENT)
        assert client.import_tasks(project, gold_sentences(TASKS, SCHEMA.labels)) == TASKS
        tasks = sorted(client.iter_tasks(project), key=lambda t: t.id)
        # A project of the loop carries prelabels; the export lists them as bare ids.
        client.import_predictions(
            project,
            [
                {"task": t.id, "result": build_result(SCHEMA, ["neutral"]), "score": 0.5,
                 "model_version": "r0"}
                for t in tasks[:3]
            ],
        )  # fmt: skip
        ids = []
        for task in tasks:
            result = build_result(SCHEMA, [task.data["gold"]])
            ids.append(client.create_annotation(task.id, result).id)
        first_gold = tasks[0].data["gold"]
        overruled = next(label for label in SCHEMA.labels if label != first_gold)
        for name in ("ann", "bo"):
            user = label_studio.create_user(f"{name}{secrets.token_hex(3)}")
            client.create_annotation(
                tasks[0].id, build_result(SCHEMA, [overruled]), completed_by=user
            )
    return Annotated(
        label_studio.url,
        label_studio.token,
        project,
        [t.id for t in tasks],
        [t.data["gold"] for t in tasks],
        ids[CUT_AFTER - 1],
        overruled,
    )


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def export(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    project: Annotated,
    output: Path,
    *extra: str,
    token: str | None = None,
) -> tuple[int, str, str]:
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", project.token if token is None else token)
    code = main(
        ["export", "--url", project.url, "--project-id", str(project.project_id),
         "--output", str(output), *extra]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def test_export_holds_exactly_the_annotations_up_to_the_cutoff(
    annotated: Annotated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "snapshot.jsonl"
    code, out, err = export(
        capsys, monkeypatch, annotated, output, "--last-annotation-id", str(annotated.cutoff)
    )
    assert code == 0, err
    assert out.strip() == str(output)
    rows = rows_of(output)
    assert [r["taskId"] for r in rows] == annotated.task_ids[:CUT_AFTER]
    # The first task's two later annotations are past the cut-off: its gold label stands.
    assert [r["label"] for r in rows] == annotated.gold[:CUT_AFTER]
    assert all(max(r["annotationIds"]) <= annotated.cutoff for r in rows)
    manifest = json.loads((tmp_path / "snapshot.manifest.json").read_text(encoding="utf-8"))
    assert manifest["count"] == CUT_AFTER
    assert manifest["lastAnnotationId"] == annotated.cutoff
    assert manifest["source"]["labelStudio"]["projectId"] == annotated.project_id
    assert manifest["taskType"] == "single-label" and manifest["labelConfig"] == SENTIMENT
    assert manifest["labels"] == ["positive", "negative", "neutral"]
    assert sum(manifest["labelCounts"].values()) == CUT_AFTER
    assert manifest["skippedAnnotations"] == {"after_cutoff": TASKS - CUT_AFTER + 2}
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    assert manifest["hash"] == f"sha256:{digest}"

    # `train --data` takes the label config and the source from the manifest.
    models = tmp_path / "models"
    args = ["train", "--data", str(output), "--epochs", "1", "--model-version", "v1"]
    assert main([*args, *fast_flags(build_tiny_model(), models)]) == 0
    assert capsys.readouterr().out.strip() == str(models / "v1")
    trained = json.loads((models / "v1" / "dataset.json").read_text(encoding="utf-8"))
    assert trained["source"]["labelStudio"]["lastAnnotationId"] == annotated.cutoff
    assert trained["source"]["exportHash"] == manifest["hash"]
    assert trained["labels"] == list(SCHEMA.labels) and trained["count"] == CUT_AFTER

    everything = tmp_path / "all.jsonl"
    code, _, err = export(capsys, monkeypatch, annotated, everything)
    assert code == 0, err
    rows = rows_of(everything)
    assert len(rows) == TASKS
    assert rows[0]["label"] == annotated.overruled  # two annotators against one
    assert len(rows[0]["annotationIds"]) == 3


def test_export_failures_exit_with_the_contract_codes(
    annotated: Annotated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "out.jsonl"
    wrong = secrets.token_hex(20)
    code, out, err = export(capsys, monkeypatch, annotated, output, token=wrong)
    assert code == 2 and not out
    assert "LABEL_STUDIO_API_KEY" in err and "token was refused" in err
    assert wrong not in err

    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    assert main(["export", "--url", annotated.url, "--project-id", "1", "--output", "x"]) == 2
    assert "LABEL_STUDIO_API_KEY: not set" in capsys.readouterr().err

    code, _, err = export(capsys, monkeypatch, annotated, output, "--last-annotation-id", "0")
    assert code == 2
    assert "no usable annotation up to lastAnnotationId 0" in err

    nowhere = dataclasses.replace(annotated, url=f"http://127.0.0.1:{free_port()}")
    code, _, err = export(capsys, monkeypatch, nowhere, output)
    assert code == 1 and "unreachable" in err
    assert not output.exists()


def test_an_earlier_export_is_reused_without_asking_label_studio(
    annotated: Annotated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Source(annotated.url, annotated.project_id, annotated.cutoff)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", annotated.token)
    first = materialise(source, tmp_path)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "not-a-token")  # asking would now fail
    assert materialise(source, tmp_path) == first
    assert (first.task_type, first.labels) == (SCHEMA.task_type, SCHEMA.labels)
    assert (first.text_field, first.label_field) == ("text", "label")
    assert first.source is not None and first.source["exportHash"].startswith("sha256:")


def test_the_operators_job_for_an_annotation_project_trains_a_version(
    annotated: Annotated, tmp_path: Path
) -> None:
    owner = Owner("FineTuneJob", "reviews-r1", "ml", "0f1e2d3c-0000-4000-8000-000000000001")
    spec = FineTuneJobSpec.model_validate(
        {
            "annotationProjectRef": {
                "name": "reviews", "round": 1, "lastAnnotationId": annotated.cutoff,
            },
            "baseModel": {"uri": "pvc://models/base/tiny"},
            "output": {"uri": "pvc://models/reviews"},
            "method": {"type": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
            "hyperparameters": {
                "epochs": 1, "batchSize": 8, "learningRate": 0.01, "maxSequenceLength": 32,
            },
        }
    )  # fmt: skip
    export = LabelStudioExport(
        annotated.url, annotated.project_id, annotated.cutoff, SecretKeySelector(name="ls")
    )
    config_map, _, job = build_training_objects(
        TrainingInputs(owner, spec, image="labelloop/trainer:test", export=export)
    )
    base = tmp_path / "mnt" / "models" / "base" / "tiny"
    base.parent.mkdir(parents=True)
    base.symlink_to(build_tiny_model(), target_is_directory=True)

    run = run_job_locally(job, config_map, tmp_path, secrets={("ls", "token"): annotated.token})
    assert run.process.returncode == 0, run.process.stderr[-3000:]
    assert annotated.token not in run.process.stdout + run.process.stderr
    version = model_version(owner)
    directory = run.local(run.job_file["outputDir"]) / version
    assert run.process.stdout.strip().splitlines() == [str(directory)]
    assert run.result()["modelVersion"] == version
    assert run.result()["dataset"]["count"] == CUT_AFTER
    manifest = json.loads((directory / "dataset.json").read_text(encoding="utf-8"))
    assert manifest["count"] == CUT_AFTER
    assert manifest["source"]["labelStudio"] == {
        "url": annotated.url,
        "projectId": annotated.project_id,
        "lastAnnotationId": annotated.cutoff,
    }
    label_map = json.loads((directory / "label_map.json").read_text(encoding="utf-8"))
    assert label_map["labels"] == list(SCHEMA.labels)
    assert (label_map["taskType"], label_map["textField"]) == ("single-label", "text")
    assert sorted(p.name for p in directory.parent.iterdir()) == [version]  # export removed
