"""The local control plane does what later tests lean on.

Fake nodes as hack/nodes.yaml declares them, real scheduling against their GPUs and taints,
Jobs that complete, the two custom kwok stages of hack/kwok-stages.yaml, and ServiceAccount
tokens that authenticate under RBAC.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from fixtures.cluster import Cluster, wait_for

pytestmark = pytest.mark.cluster

GPU = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU, "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = client.V1Toleration(key=GPU, operator="Exists", effect="NoSchedule")
H100_NODES = {"gpu-h100-a", "gpu-h100-b"}
H100_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.family": "hopper",
}
L4_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-L4",
    "nvidia.com/gpu.memory": "23034",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.family": "ada-lovelace",
}

# name -> (GPUs, cpu, GFD labels, GPU-tainted)
NODES: dict[str, tuple[str | None, str, dict[str, str], bool]] = {
    "gpu-h100-a": ("8", "96", H100_LABELS, True),
    "gpu-h100-b": ("8", "96", H100_LABELS, True),
    "gpu-l4-a": ("1", "16", L4_LABELS, True),
    "cpu-a": (None, "32", {}, False),
    "cpu-b": (None, "32", {}, False),
}


@pytest.fixture
def core(cluster: Cluster) -> Any:
    return client.CoreV1Api(cluster.api_client)


@pytest.fixture
def batch(cluster: Cluster) -> Any:
    return client.BatchV1Api(cluster.api_client)


def pod(
    name: str,
    *,
    gpus: int = 0,
    tolerate_gpu: bool = False,
    annotations: dict[str, str] | None = None,
) -> client.V1Pod:
    limits = {GPU: str(gpus)} if gpus else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, annotations=annotations),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image="registry.example/labelloop/noop:1",
                    resources=client.V1ResourceRequirements(limits=limits),
                )
            ],
            tolerations=[GPU_TOLERATION] if tolerate_gpu else None,
        ),
    )


def job(name: str, annotations: dict[str, str] | None = None) -> client.V1Job:
    template = pod(name, annotations=annotations)
    template.spec.restart_policy = "Never"
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(metadata=template.metadata, spec=template.spec),
        ),
    )


def condition(obj: Any, kind: str) -> Any:
    return next((c for c in obj.status.conditions or [] if c.type == kind), None)


def wait_job_complete(batch: Any, namespace: str, name: str) -> Any:
    def complete() -> Any:
        found = batch.read_namespaced_job_status(name, namespace)
        done = condition(found, "Complete")
        return found if done is not None and done.status == "True" else None

    return wait_for(complete, what=f"Job {namespace}/{name} to complete")


def job_pod(core: Any, namespace: str, name: str) -> Any:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


@pytest.mark.parametrize("name", NODES)
def test_node_is_ready_with_declared_resources_labels_and_taints(core: Any, name: str) -> None:
    gpus, cpu, gfd_labels, tainted = NODES[name]
    node = core.read_node(name)

    assert condition(node, "Ready").status == "True"
    for resources in (node.status.capacity, node.status.allocatable):
        assert resources.get(GPU) == gpus
        assert resources["cpu"] == cpu
        assert resources["pods"] == "110"
    labels = node.metadata.labels
    assert labels["kubernetes.io/hostname"] == name
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert labels["type"] == "kwok"
    assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
    gpu_labels = {k: v for k, v in labels.items() if k.startswith("nvidia.com/")}
    clique = gpu_labels.pop("nvidia.com/gpu.clique", None)
    assert gpu_labels == gfd_labels
    assert (clique is not None) == (name in H100_NODES)
    taints = [t.to_dict() for t in node.spec.taints or []]
    assert [{k: t[k] for k in GPU_TAINT} for t in taints] == ([GPU_TAINT] if tainted else [])


def test_h100_nodes_share_one_nvlink_clique(core: Any) -> None:
    cliques = {core.read_node(n).metadata.labels["nvidia.com/gpu.clique"] for n in H100_NODES}
    assert len(cliques) == 1
    cluster_uuid, _, clique_id = cliques.pop().rpartition(".")
    assert len(cluster_uuid) == 36
    assert clique_id.isdigit()


def test_pod_asking_for_eight_gpus_runs_on_an_h100(core: Any, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod("train", gpus=8, tolerate_gpu=True))

    def ready_pod() -> Any:
        found = core.read_namespaced_pod_status("train", namespace)
        ready = condition(found, "Ready")
        return found if ready is not None and ready.status == "True" else None

    found = wait_for(ready_pod, what="the 8-GPU pod to become Ready")
    assert found.status.phase == "Running"
    assert found.spec.node_name in H100_NODES
    assert found.status.container_statuses[0].state.running is not None


def test_gpu_pod_without_the_toleration_stays_pending(core: Any, namespace: str) -> None:
    core.create_namespaced_pod(namespace, pod("untolerated", gpus=1))

    def unschedulable() -> Any:
        found = core.read_namespaced_pod_status("untolerated", namespace)
        scheduled = condition(found, "PodScheduled")
        return scheduled if scheduled is not None and scheduled.status == "False" else None

    scheduled = wait_for(unschedulable, what="the scheduler to give up on the pod")
    assert scheduled.reason == "Unschedulable"
    # GPU nodes are all tainted and CPU nodes have no GPU: both halves of the story.
    assert "untolerated taint" in scheduled.message
    assert f"Insufficient {GPU}" in scheduled.message
    found = core.read_namespaced_pod("untolerated", namespace)
    assert found.status.phase == "Pending"
    assert found.spec.node_name is None


def test_job_completes_without_a_termination_message(core: Any, batch: Any, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job("plain"))

    wait_job_complete(batch, namespace, "plain")
    found = job_pod(core, namespace, "plain")
    assert found.status.phase == "Succeeded"
    terminated = found.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.message is None


def test_result_annotation_becomes_the_termination_message(
    core: Any, batch: Any, namespace: str
) -> None:
    # Quotes, markup, non-ASCII and a newline must all survive the stage's template.
    result = json.dumps({"f1": 0.91, "note": 'a<b & "c"\nδ'}, ensure_ascii=False)
    batch.create_namespaced_job(
        namespace, job("trainer", annotations={"labelloop.io/kwok-result": result})
    )

    wait_job_complete(batch, namespace, "trainer")
    terminated = job_pod(core, namespace, "trainer").status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"
    assert terminated.message == result


def test_never_ready_annotation_keeps_a_running_pod_unready(core: Any, namespace: str) -> None:
    never = {"labelloop.io/kwok-never-ready": "true"}
    core.create_namespaced_pod(namespace, pod("never", annotations=never))
    # A twin without the annotation shows the stage, not chance, makes the difference.
    core.create_namespaced_pod(namespace, pod("twin"))

    def status(name: str) -> Any:
        return core.read_namespaced_pod_status(name, namespace)

    wait_for(lambda: status("twin").status.phase == "Running", what="the twin to run")
    wait_for(lambda: status("never").status.phase == "Running", what="the never-ready pod to run")
    assert condition(status("twin"), "Ready").status == "True"
    found = status("never")
    assert condition(found, "Ready").status == "False"
    assert condition(found, "ContainersReady").status == "False"
    container = found.status.container_statuses[0]
    assert container.ready is False
    assert container.state.running is not None


def test_service_account_token_authenticates_and_rbac_limits_it(
    cluster: Cluster, namespace: str
) -> None:
    rbac = client.RbacAuthorizationV1Api(cluster.api_client)
    client.CoreV1Api(cluster.api_client).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="operator"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="operator-reads-configmaps"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="operator")],
        ),
    )
    token = cluster.kubectl("create", "token", "operator", "-n", namespace).stdout.strip()

    admin = cluster.api_client.configuration
    as_sa = client.Configuration()
    as_sa.host = admin.host
    as_sa.ssl_ca_cert = admin.ssl_ca_cert
    as_sa.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(as_sa) as sa_client:
        review = client.AuthenticationV1Api(sa_client).create_self_subject_review(
            client.V1SelfSubjectReview()
        )
        assert review.status.user_info.username == (f"system:serviceaccount:{namespace}:operator")
        sa_core = client.CoreV1Api(sa_client)

        def granted() -> bool:
            try:
                sa_core.list_namespaced_config_map(namespace)
            except ApiException as e:
                if e.status == 403:  # the RBAC authorizer's cache may lag the new binding
                    return False
                raise
            return True

        wait_for(granted, timeout=10, what="the RoleBinding to take effect")
        # Denied: another resource in its namespace, and its resource in another namespace.
        for list_denied, where in (
            (sa_core.list_namespaced_pod, namespace),
            (sa_core.list_namespaced_config_map, "default"),
        ):
            with pytest.raises(ApiException) as excinfo:
                list_denied(where)
            assert excinfo.value.status == 403
