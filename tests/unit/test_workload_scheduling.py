"""`--workload-scheduling`: the pods that need no GPU go where the operator is told; GPU pods
keep going where their GPUs are."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.api import FineTuneJobSpec, PrelabelServiceSpec
from labelloop.api.annotationproject import ManagedLabelStudio
from labelloop.api.base import PodScheduling, SecretKeySelector
from labelloop.cli import build_parser
from labelloop.resources.common import Owner
from labelloop.resources.labelstudio import LabelStudioInputs, build_deployment
from labelloop.resources.prelabel import PrelabelInputs, build_version_deployment
from labelloop.resources.training import TrainingInputs, build_training_objects

REAL = PodScheduling.model_validate(
    {
        "nodeSelector": {"labelloop.io/node-type": "real"},
        "tolerations": [{"key": "labelloop.io/real-node", "operator": "Exists"}],
    }
)
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
REAL_TOLERATION = {"key": "labelloop.io/real-node", "operator": "Exists"}


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def training_pod(gpus: int, scheduling: PodScheduling | None) -> dict[str, Any]:
    spec = FineTuneJobSpec.model_validate(
        {
            "dataset": {"uri": "pvc://data/reviews.jsonl"},
            "baseModel": {"uri": "pvc://models/base"},
            "output": {"uri": "pvc://models/out"},
            "resources": {"gpusPerNode": gpus},
        }
    )
    owner = Owner("FineTuneJob", "job", "ml", "0000-1111")
    inputs = TrainingInputs(owner, spec, image="trainer:1", scheduling=scheduling)
    return pod_spec(build_training_objects(inputs)[-1])


def label_studio_pod(scheduling: PodScheduling | None) -> dict[str, Any]:
    owner = Owner("AnnotationProject", "reviews", "ml", "0000-2222")
    inputs = LabelStudioInputs(
        owner, ManagedLabelStudio(), SecretKeySelector(name="ls"), "a@b.local", scheduling
    )
    return pod_spec(build_deployment(inputs))


def prelabel_pod(scheduling: PodScheduling | None) -> dict[str, Any]:
    owner = Owner("PrelabelService", "reviews", "ml", "0000-3333")
    spec = PrelabelServiceSpec.model_validate(
        {"annotationProjectRef": {"name": "reviews"}, "model": {"fineTuneJobRef": {"name": "j"}}}
    )
    inputs = PrelabelInputs(owner, spec, "trainer:1", scheduling)
    return pod_spec(build_version_deployment(inputs, "v1", "pvc://models/out/v1", 1))


@pytest.mark.parametrize(
    ("pod", "node_selector", "tolerations"),
    [
        (label_studio_pod, {"labelloop.io/node-type": "real"}, [REAL_TOLERATION]),
        (prelabel_pod, {"labelloop.io/node-type": "real"}, [REAL_TOLERATION]),
        (lambda s: training_pod(0, s), {"labelloop.io/node-type": "real"}, [REAL_TOLERATION]),
        # A GPU Job's pods need the GPU nodes: the workload placement is not theirs.
        (lambda s: training_pod(8, s), None, [GPU_TOLERATION]),
    ],
    ids=["label-studio", "prelabel", "cpu-training", "gpu-training"],
)
def test_pods_without_gpus_follow_the_workload_scheduling(
    pod: Any, node_selector: dict[str, str] | None, tolerations: list[dict[str, str]]
) -> None:
    scheduled = pod(REAL)
    assert scheduled.get("nodeSelector") == node_selector
    assert scheduled.get("tolerations") == tolerations


@pytest.mark.parametrize(
    "pod",
    [label_studio_pod, prelabel_pod, lambda s: training_pod(0, s)],
    ids=["label-studio", "prelabel", "cpu-training"],
)
def test_without_workload_scheduling_pods_carry_no_placement(pod: Any) -> None:
    unscheduled = pod(None)
    assert "nodeSelector" not in unscheduled
    assert "tolerations" not in unscheduled


def test_the_flag_is_validated_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    good = parser.parse_args(
        ["operator", "--workload-scheduling", '{"nodeSelector": {"pool": "cpu"}}']
    )
    assert good.workload_scheduling == PodScheduling(node_selector={"pool": "cpu"})
    with pytest.raises(SystemExit):
        parser.parse_args(
            ["operator", "--workload-scheduling", '{"tolerations": [{"effect": "Sometimes"}]}']
        )
    assert "tolerations.0.effect" in capsys.readouterr().err
