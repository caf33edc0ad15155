"""The pure builders of `resources/`: spec in, manifests out."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from labelloop.api import FineTuneJobSpec, PrelabelServiceSpec
from labelloop.api.annotationproject import ManagedLabelStudio
from labelloop.api.base import SecretKeySelector
from labelloop.resources.common import Owner, UnsupportedUri, child_name, mount_pvc_uri
from labelloop.resources.labelstudio import LabelStudioInputs, build_label_studio_objects
from labelloop.resources.prelabel import PrelabelInputs, build_version_deployment
from labelloop.resources.training import (
    LabelStudioExport,
    TrainingInputs,
    build_training_objects,
    job_file,
    model_version,
)

OWNER = Owner("FineTuneJob", "reviews-r3", "ml", "1a2b3c4d-0000-1111-2222-333344445555")


def training(resources: dict[str, Any] | None = None, **spec: Any) -> TrainingInputs:
    fields: dict[str, Any] = {
        "dataset": {"uri": "pvc://data/reviews.jsonl"},
        "baseModel": {"uri": "pvc://models/base/minilm"},
        "output": {"uri": "pvc://models/reviews"},
        **spec,
    }
    if resources is not None:
        fields["resources"] = resources
    return TrainingInputs(OWNER, FineTuneJobSpec.model_validate(fields), image="trainer:1")


def job_of(inputs: TrainingInputs) -> dict[str, Any]:
    return build_training_objects(inputs)[-1]


def node_terms(job: dict[str, Any]) -> dict[str, tuple[str, list[str] | None]]:
    affinity = job["spec"]["template"]["spec"].get("affinity", {})
    required = affinity.get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return {}
    (term,) = required["nodeSelectorTerms"]
    return {e["key"]: (e["operator"], e.get("values")) for e in term["matchExpressions"]}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            None,  # defaults: 1 node x 1 GPU, minMemoryGiB 24
            {"nvidia.com/gpu.count": ("Gt", ["0"]), "nvidia.com/gpu.memory": ("Gt", ["22117"])},
        ),
        (
            {"gpusPerNode": 8, "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "minMemoryGiB": 80}},
            {
                "nvidia.com/gpu.count": ("Gt", ["7"]),
                "nvidia.com/gpu.memory": ("Gt", ["73727"]),
                "nvidia.com/gpu.product": ("In", ["NVIDIA-H100-80GB-HBM3"]),
            },
        ),
        (
            {"nodes": 2, "gpusPerNode": 8, "interconnect": "nvlink", "gpu": {"minMemoryGiB": 0}},
            {"nvidia.com/gpu.count": ("Gt", ["7"]), "nvidia.com/gpu.clique": ("Exists", None)},
        ),
        ({"gpusPerNode": 0}, {}),
    ],
)
def test_node_affinity_follows_gpu_feature_discovery_labels(
    resources: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    assert node_terms(job_of(training(resources))) == expected


@pytest.mark.parametrize(
    ("resources", "anti", "clique"),
    [
        ({"nodes": 1, "gpusPerNode": 8}, None, False),
        ({"nodes": 2, "gpusPerNode": 8}, "required", False),
        ({"nodes": 2, "gpusPerNode": 8, "interconnect": "nvlink"}, "required", True),
        ({"nodes": 1, "gpusPerNode": 8, "interconnect": "nvlink"}, None, False),
        # CPU workers spread where they can, and may share one machine.
        ({"nodes": 2, "gpusPerNode": 0}, "preferred", False),
    ],
)
def test_one_pod_per_node_and_one_clique_for_multi_node_nvlink(
    resources: dict[str, Any], anti: str | None, clique: bool
) -> None:
    affinity = job_of(training(resources))["spec"]["template"]["spec"].get("affinity", {})
    kinds = [k.split("During")[0] for k in affinity.get("podAntiAffinity", {})]
    assert kinds == ([anti] if anti else [])
    assert ("podAffinity" in affinity) is clique
    if clique:
        (term,) = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "nvidia.com/gpu.clique"


def test_job_is_an_indexed_gang_with_torchrun_geometry() -> None:
    job = job_of(training({"nodes": 2, "gpusPerNode": 8, "interconnect": "nvlink"}))
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
    assert spec["backoffLimit"] == 0
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[-1]["action"] == "FailJob" and rules[-1]["onExitCodes"]["operator"] == "NotIn"
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == "reviews-r3" and pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["LABELLOOP_NNODES"], env["LABELLOOP_NPROC_PER_NODE"]) == ("2", "8")
    assert env["LABELLOOP_MASTER_ADDR"] == "reviews-r3-0.reviews-r3.ml.svc"
    assert env["NCCL_P2P_LEVEL"] == "NVL"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "32Gi"}
    assert container["args"][-3:] == [
        "labelloop_trainer",
        "train",
        "--config=/etc/labelloop/job.json",
    ]


def test_cpu_job_has_no_gpu_requests_tolerations_or_nccl() -> None:
    job = job_of(training({"gpusPerNode": 0}))
    pod = job["spec"]["template"]["spec"]
    assert "tolerations" not in pod and "resources" not in pod["containers"][0]
    assert not any(e["name"].startswith("NCCL") for e in pod["containers"][0]["env"])


def test_queue_name_suspends_the_job_for_kueue() -> None:
    job = job_of(training({"queueName": "gpu-team"}))
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-team"


def test_job_file_follows_the_contract() -> None:
    inputs = training()
    config_map = build_training_objects(inputs)[0]
    document = json.loads(config_map["data"]["job.json"])
    assert document == job_file(inputs)
    assert document["modelVersion"] == model_version(OWNER) == "reviews-r3-1a2b3c4d"
    assert document["dataset"] == {
        "path": "/mnt/data/reviews.jsonl",
        "textField": "text",
        "labelField": "label",
    }
    assert (document["baseModelDir"], document["outputDir"]) == (
        "/mnt/models/base/minilm",
        "/mnt/models/reviews",
    )
    assert document["spec"]["hyperparameters"]["learningRate"] == 1e-3


def test_project_export_passes_the_token_only_through_a_secret_reference() -> None:
    export = LabelStudioExport("http://ls.ml.svc:8080", 7, 1234, SecretKeySelector(name="ls-token"))
    spec = FineTuneJobSpec.model_validate(
        {
            "annotationProjectRef": {"name": "reviews", "round": 3, "lastAnnotationId": 1234},
            "baseModel": {"uri": "pvc://models/base/minilm"},
            "output": {"uri": "pvc://models/reviews"},
        }
    )
    inputs = TrainingInputs(OWNER, spec, image="trainer:1", export=export)
    assert job_file(inputs)["dataset"] == {
        "labelStudio": {"url": "http://ls.ml.svc:8080", "projectId": 7, "lastAnnotationId": 1234}
    }
    env = job_of(inputs)["spec"]["template"]["spec"]["containers"][0]["env"]
    (token,) = [e for e in env if e["name"] == "LABEL_STUDIO_API_KEY"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "ls-token", "key": "token"}


def mounts_of(job: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """claim -> (mount path, read-only) of the trainer container's claim volumes."""
    pod = job["spec"]["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}  # fmt: skip
    return {
        claims[m["name"]]: (m["mountPath"], m["readOnly"])
        for m in pod["containers"][0]["volumeMounts"]
        if m["name"] in claims
    }


def test_without_a_serving_version_the_job_file_has_nothing_to_beat() -> None:
    assert "previousVersionDir" not in job_file(training())


@pytest.mark.parametrize(
    ("previous", "directory", "mounts"),
    [
        # On the output claim, which is mounted read-write anyway.
        (
            "pvc://models/reviews/reviews-r2-9f8e7d6c",
            "/mnt/models/reviews/reviews-r2-9f8e7d6c",
            {"data": ("/mnt/data", True), "models": ("/mnt/models", False)},
        ),
        # On a claim of its own: mounted, read-only.
        (
            "pvc://released/reviews/v7",
            "/mnt/released/reviews/v7",
            {
                "data": ("/mnt/data", True),
                "models": ("/mnt/models", False),
                "released": ("/mnt/released", True),
            },
        ),
    ],
)
def test_the_serving_version_is_the_job_files_previous_version(
    previous: str, directory: str, mounts: dict[str, tuple[str, bool]]
) -> None:
    inputs = replace(training(), previous_version_dir=previous)
    assert job_file(inputs)["previousVersionDir"] == directory
    assert mounts_of(job_of(inputs)) == mounts


def test_every_child_is_owned_by_its_resource() -> None:
    for manifest in build_training_objects(training()):
        (ref,) = manifest["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("FineTuneJob", OWNER.uid, True)


@pytest.mark.parametrize(
    ("uri", "claim", "path"),
    [
        ("pvc://models/base/minilm", "models", "/mnt/models/base/minilm"),
        ("pvc://models", "models", "/mnt/models"),
        ("pvc://models/", "models", "/mnt/models"),
    ],
)
def test_pvc_uris_mount_at_a_path_per_claim(uri: str, claim: str, path: str) -> None:
    mounted = mount_pvc_uri(uri, "spec.baseModel.uri")
    assert (mounted.claim, mounted.local_path) == (claim, path)


@pytest.mark.parametrize("uri", ["s3://bucket/model", "/models/base", "file:///m"])
def test_other_uris_cannot_be_mounted_and_say_which_field(uri: str) -> None:
    with pytest.raises(UnsupportedUri, match=r"spec\.baseModel\.uri: .* use pvc://<claim>/<path>"):
        mount_pvc_uri(uri, "spec.baseModel.uri")


@pytest.mark.parametrize(
    ("parent", "suffix", "limit"),
    [
        ("short", "x", 63),
        ("a" * 70, "label-studio", 63),
        ("b" * 45, "", 40),
        ("reviews", "v" * 60, 63),
    ],
)
def test_child_names_are_dns_labels_and_stable(parent: str, suffix: str, limit: int) -> None:
    name = child_name(parent, suffix, max_length=limit)
    assert len(name) <= limit and name == child_name(parent, suffix, max_length=limit)
    assert name[0].isalnum() and name[-1].isalnum()


def label_studio(**managed: Any) -> list[dict[str, Any]]:
    inputs = LabelStudioInputs(
        Owner("AnnotationProject", "reviews", "ml", "uid-1"),
        ManagedLabelStudio.model_validate(managed),
        SecretKeySelector(name="ls-token"),
        "labelloop@reviews.ml.local",
    )
    return build_label_studio_objects(inputs)


@pytest.mark.parametrize(
    ("managed", "kinds", "replicas"),
    [
        ({}, ["Service", "Deployment"], 1),
        (
            {"replicas": 3, "database": {"secretRef": {"name": "pg"}}},
            ["Service", "Deployment", "PodDisruptionBudget"],
            3,
        ),
        (
            {"autoscaling": {"maxReplicas": 5}, "database": {"secretRef": {"name": "pg"}}},
            ["Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"],
            None,  # the autoscaler owns it
        ),
    ],
)
def test_label_studio_children(
    managed: dict[str, Any], kinds: list[str], replicas: int | None
) -> None:
    objects = label_studio(**managed)
    assert [o["kind"] for o in objects] == kinds
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"].get("replicas") == replicas


def test_label_studio_env_makes_no_calls_out_and_keeps_its_ssrf_protection() -> None:
    deployment = next(o for o in label_studio() if o["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in ("LATEST_VERSION_CHECK", "COLLECT_ANALYTICS"):
        assert env[name]["value"] == "false"
    for name in ("SSRF_PROTECTION_ENABLED", "ML_BLOCK_LOCAL_IP"):
        assert env[name]["value"] == "true"
    # Label Studio's default ban list is replaced by the operator's, which cuts out only the
    # Service range (see test_label_studio_ssrf.py).
    assert env["USE_DEFAULT_BANNED_SUBNETS"]["value"] == "false"
    assert "169.254.0.0/16" in env["USER_ADDITIONAL_BANNED_SUBNETS"]["value"].split(",")
    assert env["SENTRY_DSN"]["value"] == "" and env["FRONTEND_SENTRY_DSN"]["value"] == ""
    # No secret value is ever written into a manifest; only references.
    for name in ("LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN", "SECRET_KEY"):
        assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"]
    assert "DJANGO_DB" not in env  # SQLite on the volume with one replica


@pytest.mark.parametrize(
    ("base_uri", "claims", "base_arg"),
    [
        (None, {"models": True}, None),
        (
            "pvc://base-models/minilm",
            {"models": True, "base-models": True},
            "/mnt/base-models/minilm",
        ),
        # Base and versions on one volume: mounted once.
        ("pvc://models/base/minilm", {"models": True}, "/mnt/models/base/minilm"),
    ],
)
def test_prelabel_version_mounts_its_base_model_read_only(
    base_uri: str | None, claims: dict[str, bool], base_arg: str | None
) -> None:
    owner = Owner("PrelabelService", "reviews", "ml", "0000-3333")
    spec = PrelabelServiceSpec.model_validate(
        {"annotationProjectRef": {"name": "reviews"}, "model": {"fineTuneJobRef": {"name": "j"}}}
    )
    deployment = build_version_deployment(
        PrelabelInputs(owner, spec, "trainer:1"), "v1", "pvc://models/out/v1", 1, base_uri
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mounted = {
        m["mountPath"].removeprefix("/mnt/"): m["readOnly"] for m in container["volumeMounts"]
    }
    assert mounted == claims
    bases = [
        a.removeprefix("--base-model=") for a in container["args"] if a.startswith("--base-model=")
    ]
    assert bases == ([base_arg] if base_arg else [])
    assert "--model=/mnt/models/out/v1" in container["args"]
