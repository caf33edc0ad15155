"""Live training progress on the real control plane: the trainer, run here as a local process
with the credentials of the namespace's `labelloop-trainer` ServiceAccount (bound by the
operator to the chart's trainer role), patches its FineTuneJob's `status.progress`, the
operator's own status writes leave it alone, and the account can do nothing else."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from fixtures.cluster import Cluster
from fixtures.labelstudio import free_port
from fixtures.operator import (
    apply,
    bound_claim,
    condition,
    eventually,
    get,
    service_account_kubeconfig,
    status_of,
)
from labelloop_trainer.training.kube_status import GROUP, PLURAL, VERSION, StatusReporter
from labelloop_trainer.training.settings import JobRef
from trainer.operator_job import run_job_locally
from trainer.support import build_tiny_model, toy_sentences, write_jsonl

pytestmark = [pytest.mark.cluster, pytest.mark.trainer]

TRAINER_ACCOUNT = "labelloop-trainer"
EPOCHS = 2


def fine_tune_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "dataset": {"uri": "pvc://data/toy.jsonl"},
            "baseModel": {"uri": "pvc://models/base/tiny"},
            "output": {"uri": "pvc://models/out"},
            "resources": {"gpusPerNode": 1},
            "method": {"type": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
            "hyperparameters": {
                "epochs": EPOCHS, "batchSize": 8, "learningRate": 0.02, "maxSequenceLength": 32,
                "warmupRatio": 0.0,
            },
        },
    }  # fmt: skip


def test_the_trainer_reports_live_progress_through_its_narrow_role(
    kube: Cluster, namespace: str, tmp_path: Path
) -> None:
    ns, name = namespace, "live"
    apply(kube, ns, fine_tune_job(name))
    config_map = eventually(lambda: get(kube, "configmap", name, ns), "the job file ConfigMap")
    job = eventually(lambda: get(kube, "job", name, ns), "the training Job")
    eventually(lambda: get(kube, "rolebinding", TRAINER_ACCOUNT, ns), "the trainer's binding")
    kubeconfig = service_account_kubeconfig(
        kube, TRAINER_ACCOUNT, ns, tmp_path / "trainer.kubeconfig", duration="1h"
    )

    # The pod's volumes, here: the data and the base model the job file names.
    (tmp_path / "mnt" / "data").mkdir(parents=True)
    write_jsonl(tmp_path / "mnt" / "data" / "toy.jsonl", toy_sentences(20))
    base = tmp_path / "mnt" / "models" / "base" / "tiny"
    base.parent.mkdir(parents=True)
    base.symlink_to(build_tiny_model(), target_is_directory=True)

    run = run_job_locally(job, config_map, tmp_path, extra_env={"KUBECONFIG": str(kubeconfig)})
    assert run.process.returncode == 0, run.process.stderr[-3000:]
    assert '"event": "warning"' not in run.process.stderr

    progress = status_of(kube, "ftj", name, ns).get("progress") or {}
    assert progress["epoch"] == EPOCHS
    assert progress["step"] == progress["totalSteps"] > 0
    assert isinstance(progress["loss"], float) and progress["loss"] >= 0
    assert progress["updatedAt"].endswith("Z")

    # The operator goes on writing status (here: the pod runs once its volumes exist, and
    # ends without a result); the trainer's progress stays.
    bound_claim(kube, ns, "data")
    bound_claim(kube, ns, "models")

    def failed() -> dict[str, Any] | None:
        status = status_of(kube, "ftj", name, ns)
        return status if status.get("phase") == "Failed" else None

    status = eventually(failed, "phase Failed")
    assert condition(status, "Stalled")["reason"] == "ResultMissing"
    assert status["progress"] == progress

    # The account may patch the status and nothing else.
    account = config.new_client_from_config(config_file=str(kubeconfig))
    custom, core = client.CustomObjectsApi(account), client.CoreV1Api(account)
    attempts: list[Callable[[], Any]] = [
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, name, {"spec": {"image": "evil:1"}}
        ),
        lambda: core.patch_namespaced_config_map(name, ns, {"data": {"job.json": "{}"}}),
        lambda: core.list_namespaced_secret(ns),
    ]
    for attempt in attempts:
        with pytest.raises(ApiException) as refused:
            attempt()
        assert refused.value.status == 403
    ftj = get(kube, "ftj", name, ns) or {}
    assert "image" not in ftj["spec"]


def test_reporting_stops_with_one_warning_for_another_job_or_no_api(
    crds: Cluster, namespace: str
) -> None:
    ns, kube = namespace, crds
    apply(kube, ns, fine_tune_job("other"))
    warnings: list[str] = []
    lock = threading.Lock()

    def warn(message: str) -> None:
        with lock:
            warnings.append(message)

    # Same name, another uid: a FineTuneJob created again after the job file was written.
    reporter = StatusReporter(JobRef("other", ns, "not-its-uid"), kube.api_client, warn)
    for step in (1, 2):
        reporter.update(epoch=step / 2, step=step, total_steps=2, loss=0.5, now=True)
    reporter.close()
    assert len(warnings) == 1 and "not the job file's not-its-uid" in warnings[0]
    assert "progress" not in status_of(kube, "ftj", "other", ns)

    nowhere = client.Configuration()
    nowhere.host = f"http://127.0.0.1:{free_port()}"
    reporter = StatusReporter(JobRef("other", ns, "x"), client.ApiClient(nowhere), warn)
    for step in (1, 2, 3):
        reporter.update(epoch=step / 3, step=step, total_steps=3, loss=0.5, now=True)
    reporter.close()
    assert len(warnings) == 2 and "cannot report progress" in warnings[1]
