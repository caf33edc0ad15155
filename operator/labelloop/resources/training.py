"""FineTuneJob → a ConfigMap with the job file, a headless Service and an Indexed Job.

One pod per node holds all of that node's GPUs in one container, so that the ranks on a node
talk over NVLink peer-to-peer inside the pod; `torchrun` starts one process per GPU. The
pods find each other through the headless Service (pod 0 is `<job>-0.<service>`), and the
completion index is the node rank. See docs/trainer-contract.md for what the pod runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..api.base import PodScheduling, SecretKeySelector
from ..api.finetunejob import FineTuneJobSpec
from ..api.jobfile import JobDataset, JobFile, LabelStudioSource
from .common import (
    RESTRICTED_CONTAINER_SECURITY,
    Manifest,
    MountedUri,
    Owner,
    child_name,
    metadata,
    mount_pvc_uri,
    pod_template_metadata,
    pvc_volumes,
    with_scheduling,
)

COMPONENT = "labelloop-trainer"
TRAINER_SERVICE_ACCOUNT = "labelloop-trainer"
CONFIG_DIR = "/etc/labelloop"
CONFIG_FILE = f"{CONFIG_DIR}/job.json"
RENDEZVOUS_PORT = 29500
GPU_RESOURCE = "nvidia.com/gpu"
# GPU Feature Discovery's node labels.
GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY_MIB = "nvidia.com/gpu.memory"
GFD_COUNT = "nvidia.com/gpu.count"
GFD_CLIQUE = "nvidia.com/gpu.clique"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
NOMINAL_MEMORY_SHARE = 0.9


@dataclass(frozen=True)
class LabelStudioExport:
    """The annotations a run trains on, when they come from an AnnotationProject."""

    url: str
    project_id: int
    last_annotation_id: int | None
    credentials: SecretKeySelector


@dataclass(frozen=True)
class TrainingInputs:
    """Everything the builders need; the controller resolves it from the cluster."""

    owner: Owner
    spec: FineTuneJobSpec
    image: str
    export: LabelStudioExport | None = None
    service_account: str | None = None
    previous_version_dir: str | None = None
    """The URI of the version serving now (`loop.serving.previous_version`), e.g.
    `pvc://models/reviews/<version>`: the trainer reads its `metrics.json` for
    `promotion.mustImprove`, so the Job mounts it read-only. None: nothing to beat."""
    scheduling: PodScheduling | None = None
    """The operator's placement of pods without GPUs (`--workload-scheduling`); a GPU Job's
    pods go where their GPUs are."""


def _previous(inputs: TrainingInputs) -> MountedUri | None:
    uri = inputs.previous_version_dir
    return None if uri is None else mount_pvc_uri(uri, "the serving version's uri")


def model_version(owner: Owner) -> str:
    """The version a FineTuneJob produces: its name and a piece of its uid, so a job deleted
    and created again under the same name never overwrites the first one's model."""
    return child_name(owner.name, owner.uid.replace("-", "")[:8], max_length=40)


def job_name(owner: Owner) -> str:
    # Pods of an Indexed Job are named `<job>-<index>-<random>` and their hostname is
    # `<job>-<index>`, which must stay a DNS label.
    return child_name(owner.name, max_length=52)


def _geometry(spec: FineTuneJobSpec) -> tuple[int, int]:
    """(nodes, processes per node): one process per GPU, or one on CPU."""
    return spec.resources.nodes, max(spec.resources.gpus_per_node, 1)


def job_file(inputs: TrainingInputs) -> dict[str, Any]:
    """The job file the trainer reads (`--config`): `JobFile`, the model both sides share."""
    spec = inputs.spec
    base = mount_pvc_uri(spec.base_model.uri, "spec.baseModel.uri")
    output = mount_pvc_uri(spec.output.uri, "spec.output.uri")
    dataset: JobDataset
    if spec.dataset is not None:
        data = mount_pvc_uri(spec.dataset.uri, "spec.dataset.uri")
        dataset = JobDataset(
            path=data.local_path,
            text_field=spec.dataset.text_field,
            label_field=spec.dataset.label_field,
        )
    elif inputs.export is not None:
        dataset = JobDataset(
            label_studio=LabelStudioSource(
                url=inputs.export.url,
                project_id=inputs.export.project_id,
                last_annotation_id=inputs.export.last_annotation_id,
            )
        )
    else:
        raise ValueError("a FineTuneJob of an AnnotationProject needs the project's export")
    return JobFile(
        name=inputs.owner.name,
        namespace=inputs.owner.namespace,
        uid=inputs.owner.uid,
        model_version=model_version(inputs.owner),
        spec=spec,
        dataset=dataset,
        output_dir=output.local_path,
        base_model_dir=base.local_path,
        previous_version_dir=previous.local_path if (previous := _previous(inputs)) else None,
    ).to_json()


def build_job_config(inputs: TrainingInputs) -> Manifest:
    owner = inputs.owner
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, job_name(owner), COMPONENT),
        "data": {"job.json": json.dumps(job_file(inputs), indent=2, sort_keys=True)},
    }


def build_rendezvous_service(inputs: TrainingInputs) -> Manifest:
    """Headless, and publishing not-ready pods: ranks must resolve pod 0 before any is ready."""
    owner = inputs.owner
    name = job_name(owner)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, name, COMPONENT),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {"batch.kubernetes.io/job-name": name},
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT}],
        },
    }


def _node_affinity(spec: FineTuneJobSpec) -> dict[str, Any] | None:
    resources = spec.resources
    if resources.gpus_per_node == 0:
        return None
    expressions: list[dict[str, Any]] = [
        # `Gt` is strict: at least N GPUs means more than N - 1.
        {"key": GFD_COUNT, "operator": "Gt", "values": [str(resources.gpus_per_node - 1)]},
    ]
    if resources.gpu.min_memory_gib > 0:
        # GPUs are sold by nominal memory; GFD reports what the driver leaves (an "80 GB"
        # H100 shows 81559 MiB, a "24 GB" L4 23034 MiB), so allow 10% below nominal.
        min_mib = int(resources.gpu.min_memory_gib * 1024 * NOMINAL_MEMORY_SHARE)
        expressions.append({"key": GFD_MEMORY_MIB, "operator": "Gt", "values": [str(min_mib - 1)]})
    if resources.gpu.product:
        expressions.append(
            {"key": GFD_PRODUCT, "operator": "In", "values": [resources.gpu.product]}
        )
    if _needs_one_clique(spec):
        expressions.append({"key": GFD_CLIQUE, "operator": "Exists"})
    return {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": expressions}]
        }
    }


def _needs_one_clique(spec: FineTuneJobSpec) -> bool:
    return spec.resources.interconnect == "nvlink" and spec.resources.nodes > 1


def _pod_affinities(spec: FineTuneJobSpec, name: str) -> dict[str, Any]:
    same_job = {"labelSelector": {"matchLabels": {"batch.kubernetes.io/job-name": name}}}
    out: dict[str, Any] = {}
    one_per_node = {**same_job, "topologyKey": "kubernetes.io/hostname"}
    if spec.resources.nodes > 1 and spec.resources.gpus_per_node > 0:
        # One pod per node: the ranks of a node share NVLink inside their pod.
        out["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [one_per_node]}
    elif spec.resources.nodes > 1:
        # CPU workers spread over machines where they can, and share one where they must.
        out["podAntiAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": one_per_node}
            ]
        }
    if _needs_one_clique(spec):
        # All pods in one NVLink domain. The scheduler lets the first pod match itself.
        out["podAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {**same_job, "topologyKey": GFD_CLIQUE}
            ]
        }
    return out


def _nccl_env(spec: FineTuneJobSpec) -> list[dict[str, str]]:
    if spec.resources.gpus_per_node == 0:
        return []
    env = [
        # A rank that fails makes the others fail fast instead of hanging in a collective,
        # so the failure policy below can end the whole Job.
        {"name": "TORCH_NCCL_ASYNC_ERROR_HANDLING", "value": "1"},
        {"name": "NCCL_DEBUG", "value": "WARN"},
    ]
    if spec.resources.interconnect == "nvlink":
        # Peer-to-peer only over NVLink: a pod that lands without it is slow, not silently
        # routed through PCIe host memory.
        env.append({"name": "NCCL_P2P_LEVEL", "value": "NVL"})
    return env


def _shm_size(spec: FineTuneJobSpec) -> str:
    # NCCL and the data loader's workers share memory through /dev/shm; Docker's 64 MiB
    # default is far too small. 4 GiB per process, up to 64 GiB.
    _, procs = _geometry(spec)
    return f"{min(4 * procs, 64)}Gi"


def build_training_job(inputs: TrainingInputs) -> Manifest:
    owner, spec = inputs.owner, inputs.spec
    name = job_name(owner)
    nodes, procs = _geometry(spec)
    master = f"{name}-0.{name}.{owner.namespace}.svc"
    job_labels: dict[str, str] = {}
    if spec.resources.queue_name:
        job_labels["kueue.x-k8s.io/queue-name"] = spec.resources.queue_name

    base = mount_pvc_uri(spec.base_model.uri, "spec.baseModel.uri")
    output = mount_pvc_uri(spec.output.uri, "spec.output.uri")
    mounts = [base, output]
    if spec.dataset is not None:
        mounts.append(mount_pvc_uri(spec.dataset.uri, "spec.dataset.uri"))
    previous = _previous(inputs)
    if previous is not None:
        mounts.append(previous)
    read_only = {m.claim for m in mounts} - {output.claim}
    volumes, volume_mounts = pvc_volumes(mounts, read_only)

    env: list[dict[str, Any]] = [
        {
            "name": "LABELLOOP_NODE_RANK",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}},
        },
        {"name": "LABELLOOP_NNODES", "value": str(nodes)},
        {"name": "LABELLOOP_NPROC_PER_NODE", "value": str(procs)},
        {"name": "LABELLOOP_MASTER_ADDR", "value": master},
        {"name": "LABELLOOP_RESULT_FILE", "value": "/dev/termination-log"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        *_nccl_env(spec),
    ]
    if inputs.export is not None:
        creds = inputs.export.credentials
        env.append(
            {
                "name": "LABEL_STUDIO_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": creds.name, "key": creds.key}},
            }
        )

    container: dict[str, Any] = {
        "name": "trainer",
        "image": inputs.image,
        "command": ["torchrun"],
        "args": [
            "--nnodes=$(LABELLOOP_NNODES)",
            "--nproc-per-node=$(LABELLOOP_NPROC_PER_NODE)",
            "--node-rank=$(LABELLOOP_NODE_RANK)",
            "--master-addr=$(LABELLOOP_MASTER_ADDR)",
            f"--master-port={RENDEZVOUS_PORT}",
            "-m",
            "labelloop_trainer",
            "train",
            f"--config={CONFIG_FILE}",
        ],
        "env": env,
        "ports": [{"name": "rendezvous", "containerPort": RENDEZVOUS_PORT}],
        "volumeMounts": [
            {"name": "job-config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *volume_mounts,
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
    }
    if spec.resources.gpus_per_node:
        gpus = str(spec.resources.gpus_per_node)
        container["resources"] = {"limits": {GPU_RESOURCE: gpus}, "requests": {GPU_RESOURCE: gpus}}

    pod_spec: dict[str, Any] = {
        "subdomain": name,
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": "job-config", "configMap": {"name": name}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": _shm_size(spec)}},
            *volumes,
        ],
        "securityContext": {"runAsNonRoot": True, "fsGroup": 1000},
    }
    if inputs.service_account:
        pod_spec["serviceAccountName"] = inputs.service_account
    affinity = {k: v for k, v in {"nodeAffinity": _node_affinity(spec)}.items() if v}
    affinity.update(_pod_affinities(spec, name))
    if affinity:
        pod_spec["affinity"] = affinity
    if spec.resources.gpus_per_node:
        pod_spec["tolerations"] = [
            {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]
    else:
        pod_spec = with_scheduling(pod_spec, inputs.scheduling)

    pod_labels = {"app.kubernetes.io/name": COMPONENT, "labelloop.io/finetunejob": owner.name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(owner, name, COMPONENT, **job_labels),
        "spec": {
            "completionMode": "Indexed",
            "completions": nodes,
            "parallelism": nodes,
            # Kueue admits a suspended Job by unsuspending it when quota is free.
            "suspend": bool(spec.resources.queue_name),
            # A gang: one failed rank fails the Job at once (the others cannot go on without
            # it). Evictions and preemptions do not count; the pod comes back and resumes
            # from the last checkpoint.
            "backoffLimit": 0,
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "trainer",
                            "operator": "NotIn",
                            "values": [0],
                        },
                    },
                ]
            },
            "template": {
                "metadata": pod_template_metadata(pod_labels, spec.pod_metadata),
                "spec": pod_spec,
            },
        },
    }


def build_trainer_service_account(namespace: str) -> Manifest:
    """The ServiceAccount of training pods in a namespace, shared by its FineTuneJobs."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": TRAINER_SERVICE_ACCOUNT,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": COMPONENT,
                "app.kubernetes.io/managed-by": "labelloop",
            },
        },
    }


def build_trainer_role_binding(namespace: str, cluster_role: str) -> Manifest:
    """Grants the trainer's ServiceAccount the chart's narrow trainer role, in this namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": TRAINER_SERVICE_ACCOUNT,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": COMPONENT,
                "app.kubernetes.io/managed-by": "labelloop",
            },
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": cluster_role,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": TRAINER_SERVICE_ACCOUNT, "namespace": namespace}
        ],
    }


def build_training_objects(inputs: TrainingInputs) -> list[Manifest]:
    """Every child of a FineTuneJob, in the order they are applied."""
    return [
        build_job_config(inputs),
        build_rendezvous_service(inputs),
        build_training_job(inputs),
    ]
