"""`promotion.mustImprove` on the real control plane: a new FineTuneJob of a project whose
PrelabelService serves a version is trained against that version.

The operator renders the job file with `previousVersionDir` (the serving version, pinned when
the run starts); the training Job is created suspended (a Kueue queue), so its pod does not
run on kwok. Its command runs here instead (`trainer.operator_job.run_job_locally`): the
trainer exports the project's annotations from the session's real Label Studio, trains a tiny
model and judges the gate against the serving version (a real one, trained well on the same
sentences), which it scores on the new version's held-out annotations. Its result line goes
back as the pod's termination message (kwok's `labelloop.io/kwok-result`
stage, set on the still-suspended Job's pod template, as an admission controller would, then
the Job is resumed, as Kueue would), and the operator copies it into the FineTuneJob's status.
With `autoPromote` the PrelabelService keeps the better version under `mustImprove: true` and
takes the new one under `mustImprove: false`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.cluster import Cluster
from fixtures.labelstudio import LabelStudioServer
from fixtures.operator import apply, b64, bound_claim, condition, eventually, get, status_of
from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.controllers.finetunejob import PREVIOUS_VERSION_ANNOTATION
from labelloop.labelstudio.client import LabelStudioClient
from labelloop_trainer.cli import main
from trainer.operator_job import run_job_locally
from trainer.support import build_tiny_model, fast_flags, toy_sentences, write_jsonl

pytestmark = [pytest.mark.cluster, pytest.mark.labelstudio, pytest.mark.trainer]

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="pos"/><Choice value="neg"/><Choice value="neu"/></Choices></View>'
)
SCHEMA = parse_label_config(CONFIG)
SERVING = "v1"
SERVING_URI = f"pvc://models/reviews/{SERVING}"


def project(url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "reviews"},
        "spec": {
            "labelStudio": {"external": {"url": url}},
            "credentialsSecretRef": {"name": "ls-token"},
            "project": {"title": f"must-improve {time.time_ns()}", "labelConfig": CONFIG},
            "data": {"inline": [{"text": r["text"]} for r in rows]},
        },
    }


def prelabel_service() -> dict[str, Any]:
    """autoPromote; until a job passes its gate, spec.model (the version serving, v1). It
    finds its project's jobs by `annotationProjectRef`, and the jobs find it the same way."""
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "PrelabelService",
        "metadata": {"name": "reviews"},
        "spec": {
            "annotationProjectRef": {"name": "reviews"},
            "model": {"version": SERVING, "uri": SERVING_URI},
            "autoPromote": True,
            "replicas": 1,
            "rollout": {"strategy": "BlueGreen"},
        },
    }


def fine_tune_job(name: str, *, must_improve: bool) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "annotationProjectRef": {"name": "reviews"},
            "baseModel": {"uri": "pvc://models/base/tiny"},
            "output": {"uri": "pvc://models/reviews"},
            # Held back in a queue: the test runs the pod's command itself, then resumes it.
            "resources": {"gpusPerNode": 1, "queueName": "gpu-team"},
            "method": {"type": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
            # One short epoch: a model well below the serving version.
            "hyperparameters": {
                "epochs": 1, "batchSize": 8, "learningRate": 1e-4, "maxSequenceLength": 32,
                "warmupRatio": 0.0, "evalSplit": 0.3,
            },
            "evaluation": {
                "metrics": ["accuracy", "f1"],
                "promotion": {"metric": "f1", "minimum": 0.0, "mustImprove": must_improve},
            },
        },
    }  # fmt: skip


def serving_pods_volumes(root: Path, rows: list[dict[str, Any]]) -> None:
    """The claims as the pod would see them: the base model, and the serving version, trained
    here for many epochs on the project's sentences."""
    base = root / "mnt" / "models" / "base" / "tiny"
    base.parent.mkdir(parents=True, exist_ok=True)
    if not base.exists():
        base.symlink_to(build_tiny_model(), target_is_directory=True)
    data = write_jsonl(root / "serving.jsonl", rows)
    code = main(
        ["train", "--data", str(data), "--model-version", SERVING, "--epochs", "8",
         *fast_flags(base, root / "mnt" / "models" / "reviews"),
         "--target-modules", "query,key,value,dense", "--learning-rate", "0.01"]
    )  # fmt: skip
    assert code == 0


def train_here(
    kube: Cluster, ns: str, name: str, root: Path, *, token: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Run the operator's Job for FineTuneJob `name` here; its result line."""
    config_map = eventually(lambda: get(kube, "configmap", name, ns), f"{name}'s job file")
    job = eventually(lambda: get(kube, "job", name, ns), f"{name}'s training Job")
    assert job["spec"]["suspend"] is True
    job_file = json.loads(config_map["data"]["job.json"])
    # The version serving when the run started, on its claim, read-only unless the output's.
    assert job_file["previousVersionDir"] == f"/mnt/models/reviews/{SERVING}"
    ftj = get(kube, "ftj", name, ns) or {}
    assert ftj["metadata"]["annotations"][PREVIOUS_VERSION_ANNOTATION] == SERVING_URI
    serving_pods_volumes(root, rows)
    run = run_job_locally(job, config_map, root, secrets={("ls-token", "token"): token})
    assert run.process.returncode == 0, run.process.stderr[-3000:]
    result = run.result()
    # Both scored on the new version's held-out annotations.
    verdict = result["promotion"]
    assert verdict["servingVersion"] == SERVING
    assert verdict["candidateScore"] < verdict["servingScore"], verdict
    return result


def report_back(kube: Cluster, ns: str, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The result as rank 0's termination message; the FineTuneJob's status once Succeeded."""
    annotations = {"labelloop.io/kwok-result": json.dumps(result)}
    template = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
    kube.kubectl("patch", "job", name, "-n", ns, "--type=merge", "-p", json.dumps(template))
    kube.kubectl("patch", "job", name, "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')

    def succeeded() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", name, ns)
        return status if status.get("phase") == "Succeeded" else None

    return dict(eventually(succeeded, f"{name} Succeeded", timeout=90))


def active(kube: Cluster, ns: str, version: str) -> dict[str, Any] | None:
    status = status_of(kube, "pls", "reviews", ns)
    ready = condition(status, "Ready").get("status") == "True"
    return status if status.get("activeVersion") == version and ready else None


def test_a_worse_version_is_not_promoted_under_must_improve(
    kube: Cluster, namespace: str, label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    ns = namespace
    bound_claim(kube, ns, "models")
    rows = toy_sentences(8)
    token = label_studio.token
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ls-token"}}
    apply(kube, ns, {**secret, "data": {"token": b64(token)}})
    apply(kube, ns, project(label_studio.url, rows), prelabel_service())

    # The project's tasks, labelled; v1 (spec.model, no job passed a gate yet) serving.
    def synced() -> int | None:
        ls = status_of(kube, "ap", "reviews", ns).get("labelStudio") or {}
        counts = status_of(kube, "ap", "reviews", ns).get("counts") or {}
        return ls.get("projectId") if counts.get("tasks") == len(rows) else None

    project_id = eventually(synced, "the project with its tasks", timeout=90)
    labels = {r["text"]: r["label"] for r in rows}
    with LabelStudioClient(label_studio.url, token) as ls:
        for task in ls.iter_tasks(project_id):
            ls.create_annotation(task.id, build_result(SCHEMA, [labels[task.data["text"]]]))
    eventually(lambda: active(kube, ns, SERVING), "v1 serving", timeout=90)

    # mustImprove: true. The new version is worse than v1: written, not promoted.
    apply(kube, ns, fine_tune_job("reviews-r2", must_improve=True))
    result = train_here(kube, ns, "reviews-r2", tmp_path / "r2", token=token, rows=rows)
    assert result["promotion"]["passed"] is False
    assert f"does not improve on {SERVING}'s" in result["promotion"]["reason"]
    status = report_back(kube, ns, "reviews-r2", result)
    assert status["promotion"]["passed"] is False
    assert status["promotion"]["servingScore"] == result["promotion"]["servingScore"]
    time.sleep(12)  # two PrelabelService passes
    kept = active(kube, ns, SERVING)
    assert kept is not None, status_of(kube, "pls", "reviews", ns)
    assert result["modelVersion"] not in {v["version"] for v in kept.get("versions") or ()}

    # mustImprove: false. The same kind of version passes its gate and is promoted.
    apply(kube, ns, fine_tune_job("reviews-r3", must_improve=False))
    result = train_here(kube, ns, "reviews-r3", tmp_path / "r3", token=token, rows=rows)
    assert result["promotion"]["passed"] is True
    assert report_back(kube, ns, "reviews-r3", result)["promotion"]["passed"] is True
    promoted = eventually(lambda: active(kube, ns, result["modelVersion"]), "r3 promoted")
    assert promoted["previousVersion"] == SERVING
    assert promoted["activeVersion"] == result["modelVersion"]
