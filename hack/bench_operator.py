"""`make bench-operator`: the operator at scale on the local control plane.

On the running local cluster (`make cluster-up`), the benchmark makes, in namespaces of its own
(`bench-<run>-<i>`):

- `--count` AnnotationProjects in external mode, all on one real Label Studio server (a local
  process, `labelloop.local.labelstudio_server`), three inline tasks each;
- `--count` FineTuneJobs on CPU with a dataset source, run by kwok (its stage turns the pod's
  `labelloop.io/kwok-result` annotation into rank 0's result);
- `--count` PrelabelServices, each serving its FineTuneJob's version for its project;

and fake kwok nodes of its own for their pods (the operator's `--workload-scheduling` puts
every pod there). With everything created, it starts the operator from the checkout (as
`make operator` does, with the admin's credentials), and measures:

- convergence: the time from the moment the operator answers its liveness probe (kopf has
  started; how long that took is reported too) until every project is Ready (synced), every
  run finished and every service Ready, per kind and in all;
- the operator's peak RSS (VmHWM) and its CPU, from /proc;
- an idle minute with the operator running, then one with the operator stopped: the API
  server's write requests (POST, PUT, PATCH, APPLY, DELETE) and read requests (GET, LIST) from
  its own counter `apiserver_request_total`, the operator's share being the difference on
  the resources it reads and writes (`OPERATOR_RESOURCES`; kwok's node heartbeats come and
  go by the minute); and the operator's Label Studio requests in that minute (its
  `labelloop_label_studio_requests`).

Everything it made is deleted at the end (namespaces, volumes, nodes, the Label Studio server).
The JSON report goes to `bench-reports/operator.json`, with a note comparing the measurement
with the one that opened issue #13 (the timer-driven operator).

    .venv/bin/python hack/bench_operator.py                 # 1,000 of each kind
    .venv/bin/python hack/bench_operator.py --count 100     # a quick run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from labelloop.controllers.context import DEFAULT_RESYNC_SECONDS
from labelloop.local.labelstudio_server import LabelStudioServer, find_label_studio, free_port

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "labelloop.io", "v1alpha1"
BENCH_LABEL = "labelloop.io/bench"
WRITES = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}
READS = {"GET", "LIST"}
# What the operator reads and writes (group/resource[/subresource], as counted below); the
# rest (nodes, pods, endpoints, leases) is the control plane's and kwok's own traffic.
OPERATOR_RESOURCES = (
    "labelloop.io/",
    "batch/jobs",
    "apps/deployments",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "events",
    "serviceaccounts",
    "rbac.authorization.k8s.io/rolebindings",
    "networking.k8s.io/networkpolicies",
    "autoscaling/horizontalpodautoscalers",
    "policy/poddisruptionbudgets",
)
PODS_PER_NODE = 1000
LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)
# The measurement that opened issue #13: the timer-driven operator, 200 + 200 objects.
BEFORE: dict[str, Any] = {
    "objects": "200 FineTuneJobs (finished) + 200 PrelabelServices (steady)",
    "convergeSeconds": 67,
    "operatorRssMiB": 176,
    "idleMinuteApiWrites": 4979,
    "idleMinuteApiReads": 4979,
    "idleMinuteApiWritesWithoutOperator": 20,
    "operatorCpuIdlePercent": 20,
}


def log(message: str) -> None:
    print(f"[bench-operator] {message}", file=sys.stderr, flush=True)


@dataclass
class Requests:
    """The API server's request counters by verb and resource, at one moment."""

    by_verb_resource: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def scrape(cls, kubeconfig: Path) -> Requests:
        text = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = cls()
        pattern = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
        for line in text.splitlines():
            match = pattern.match(line)
            if not match:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if not labels.get("resource"):  # /metrics, /readyz, discovery: not objects
                continue
            resource = "/".join(
                part
                for part in (labels.get("group"), labels["resource"], labels.get("subresource"))
                if part
            )
            found.by_verb_resource[(labels["verb"], resource)] += int(float(match.group(2)))
        return found

    def since(self, before: Requests) -> Requests:
        delta = Counter(self.by_verb_resource)
        delta.subtract(before.by_verb_resource)
        return Requests(Counter({k: v for k, v in delta.items() if v > 0}))

    def count(self, verbs: set[str], resources: tuple[str, ...] = ("",)) -> int:
        """Requests with one of `verbs` on resources starting with one of `resources`."""
        return sum(
            n
            for (verb, resource), n in self.by_verb_resource.items()
            if verb in verbs and resource.startswith(resources)
        )

    def detail(self, verbs: set[str]) -> dict[str, int]:
        return {
            f"{verb} {resource}": n
            for (verb, resource), n in sorted(self.by_verb_resource.items())
            if verb in verbs
        }


class OperatorProcess:
    """`labelloop operator` from the checkout, watched through /proc."""

    def __init__(self, kubeconfig: Path, namespaces: str, log_path: Path, node_label: str) -> None:
        self.metrics_port, self.webhook_port = free_port(), free_port()
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        scheduling = {"nodeSelector": {BENCH_LABEL: node_label}}
        self.command = [
            sys.executable,
            "-m",
            "labelloop.cli",
            "operator",
            f"--namespace={namespaces}",
            "--log-format=plain",
            f"--liveness={self.liveness}",
            f"--metrics-listen=127.0.0.1:{self.metrics_port}",
            f"--webhook-listen=127.0.0.1:{self.webhook_port}",
            f"--webhook-url=http://127.0.0.1:{self.webhook_port}",
            f"--workload-scheduling={json.dumps(scheduling)}",
        ]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_live(self, timeout: float = 120.0) -> float:
        """Seconds from now until the operator answers its liveness probe (kopf has started)."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            self.alive()
            try:
                with urllib.request.urlopen(self.liveness, timeout=1):
                    return time.monotonic() - began
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the operator did not start within {timeout:g}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the operator exited ({self.process.returncode}):\n{tail}")

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kib(self, field_name: str) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field_name} in /proc/{self.process.pid}/status")

    def label_studio_requests(self) -> int:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        return int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("labelloop_label_studio_requests_total{")
            )
        )


@dataclass
class Bench:
    api: client.ApiClient
    kubeconfig: Path
    count: int
    projects: int
    namespace_count: int
    work: Path
    run: str = field(default_factory=lambda: time.strftime("%H%M%S"))
    label_studio: LabelStudioServer | None = None
    nodes: list[str] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return [f"bench-{self.run}-{i}" for i in range(self.namespace_count)]

    def namespace_of(self, i: int) -> str:
        return self.namespaces[i % self.namespace_count]

    # -- set-up -----------------------------------------------------------------------------

    def start_label_studio(self) -> LabelStudioServer:
        log("starting Label Studio (the first start migrates its database: about a minute)")
        server = LabelStudioServer(
            data_dir=self.work / "label-studio",
            log_path=self.work / "label-studio.log",
            port=free_port(),
            executable=find_label_studio(),
        )
        self.label_studio = server
        server.start()
        return server

    def make_nodes(self) -> None:
        core = client.CoreV1Api(self.api)
        wanted = math.ceil(2 * self.count / (PODS_PER_NODE * 0.8))
        for i in range(wanted):
            name = f"bench-{self.run}-{i}"
            capacity = {"cpu": "1000", "memory": "4Ti", "pods": str(PODS_PER_NODE)}
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {BENCH_LABEL: self.run, "type": "kwok"},
                },
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            core.create_node(node)
            self.nodes.append(name)
        log(f"{wanted} kwok nodes for the benchmark's pods")

    def make_namespaces(self, token: str) -> None:
        core = client.CoreV1Api(self.api)
        for namespace in self.namespaces:
            core.create_namespace(
                {"metadata": {"name": namespace, "labels": {BENCH_LABEL: self.run}}}
            )
            core.create_namespaced_secret(
                namespace,
                {"metadata": {"name": "label-studio"}, "stringData": {"token": token}},
            )
            for claim in ("data", "models"):
                volume = f"{namespace}-{claim}"
                core.create_persistent_volume(
                    {
                        "metadata": {"name": volume, "labels": {BENCH_LABEL: self.run}},
                        "spec": {
                            "capacity": {"storage": "100Gi"},
                            "accessModes": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
                            "hostPath": {"path": f"/tmp/{volume}"},
                            "claimRef": {"namespace": namespace, "name": claim},
                            "persistentVolumeReclaimPolicy": "Delete",
                        },
                    }
                )
                core.create_namespaced_persistent_volume_claim(
                    namespace,
                    {
                        "metadata": {"name": claim},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                            "storageClassName": "",
                            "volumeName": volume,
                        },
                    },
                )

    def project(self, i: int, label_studio_url: str) -> dict[str, Any]:
        return {
            "metadata": {"name": f"p{i}", "labels": {BENCH_LABEL: self.run}},
            "spec": {
                "labelStudio": {"external": {"url": label_studio_url}},
                "credentialsSecretRef": {"name": "label-studio"},
                "project": {"title": f"bench {self.run} p{i}", "labelConfig": LABEL_CONFIG},
                "data": {"inline": [{"text": f"task {i}.{t}"} for t in range(3)]},
            },
        }

    def objects(self, label_studio_url: str) -> Iterable[tuple[str, str, dict[str, Any]]]:
        """(namespace, plural, object) for every custom resource of the benchmark."""
        labels = {BENCH_LABEL: self.run}
        for i in range(self.count):
            namespace = self.namespace_of(i)
            version = f"m{i}"
            result = {
                "modelVersion": version,
                "artifactUri": f"pvc://models/out/{version}",
                "metrics": {"macro_f1": 0.8},
                "promotion": {"passed": True, "reason": "benchmark"},
            }
            if i < self.projects:
                yield namespace, "annotationprojects", self.project(i, label_studio_url)
            yield (
                namespace,
                "finetunejobs",
                {
                    "metadata": {"name": f"t{i}", "labels": labels},
                    "spec": {
                        "dataset": {"uri": "pvc://data/train.jsonl"},
                        "baseModel": {"uri": "pvc://models/base"},
                        "output": {"uri": "pvc://models/out"},
                        "resources": {"gpusPerNode": 0},
                        "podMetadata": {
                            "annotations": {"labelloop.io/kwok-result": json.dumps(result)}
                        },
                    },
                },
            )
            yield (
                namespace,
                "prelabelservices",
                {
                    "metadata": {"name": f"s{i}", "labels": labels},
                    "spec": {
                        "annotationProjectRef": {"name": f"p{i}"},
                        "model": {"fineTuneJobRef": {"name": f"t{i}"}},
                    },
                },
            )

    def create_objects(self, label_studio_url: str) -> float:
        custom = client.CustomObjectsApi(self.api)
        kinds = {
            "annotationprojects": "AnnotationProject",
            "finetunejobs": "FineTuneJob",
            "prelabelservices": "PrelabelService",
        }

        def create(item: tuple[str, str, dict[str, Any]]) -> None:
            namespace, plural, body = item
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kinds[plural], **body}
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

        began = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, self.objects(label_studio_url)))
        return time.monotonic() - began

    # -- measuring --------------------------------------------------------------------------

    def converged(self) -> dict[str, int]:
        """How many objects of each kind have converged."""
        custom = client.CustomObjectsApi(self.api)
        selector = f"{BENCH_LABEL}={self.run}"
        done: dict[str, int] = {}
        for plural, check in (
            ("annotationprojects", _ready),
            ("finetunejobs", _finished),
            ("prelabelservices", _ready),
        ):
            items = custom.list_cluster_custom_object(
                GROUP, VERSION, plural, label_selector=selector
            )["items"]
            done[plural] = sum(1 for item in items if check(item.get("status") or {}))
        return done

    def wait_converged(
        self, operator: OperatorProcess, timeout: float, sample: Callable[[], None]
    ) -> dict[str, float | None]:
        began = time.monotonic()
        at: dict[str, float | None] = dict.fromkeys(
            ("annotationprojects", "finetunejobs", "prelabelservices")
        )
        last_report = 0.0
        while time.monotonic() - began < timeout:
            operator.alive()
            sample()
            done = self.converged()
            now = time.monotonic() - began
            for plural, n in done.items():
                wanted = self.projects if plural == "annotationprojects" else self.count
                if n == wanted and at[plural] is None:
                    at[plural] = round(now, 1)
            if now - last_report > 15:
                log(f"{now:.0f}s: converged {done}")
                last_report = now
            if all(v is not None for v in at.values()):
                break
            time.sleep(1.0)
        return at

    # -- clean-up ---------------------------------------------------------------------------

    def clean_up(self) -> None:
        core = client.CoreV1Api(self.api)
        for namespace in self.namespaces:
            _ignore_missing(core.delete_namespace, namespace)
        selector = f"{BENCH_LABEL}={self.run}"
        for volume in core.list_persistent_volume(label_selector=selector).items:
            _ignore_missing(core.delete_persistent_volume, volume.metadata.name)
        for node in self.nodes:
            _ignore_missing(core.delete_node, node)
        if self.label_studio is not None:
            self.label_studio.stop()


def _ready(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def _finished(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed")


def _ignore_missing(delete: Callable[[str], object], name: str) -> None:
    try:
        delete(name)
    except ApiException as error:
        if error.status != 404:
            raise


def wait_for_earlier_runs(api: client.ApiClient, timeout: float = 600.0) -> None:
    """Wait until the namespaces of earlier runs are gone: their deletion is the namespace
    controller's DELETEs on the very resources counted as the operator's while idle."""
    core = client.CoreV1Api(api)
    began = time.monotonic()
    while names := [n.metadata.name for n in core.list_namespace(label_selector=BENCH_LABEL).items]:
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"namespaces of an earlier run are still there: {names}")
        log(f"waiting for {len(names)} namespace(s) of an earlier run to be deleted")
        time.sleep(5)


def idle_minute(
    kubeconfig: Path, seconds: float, operator: OperatorProcess | None
) -> dict[str, Any]:
    """The API server's requests (and the operator's, if running) over `seconds` of nothing."""
    before = Requests.scrape(kubeconfig)
    cpu = operator.cpu_seconds() if operator else 0.0
    label_studio = operator.label_studio_requests() if operator else 0
    time.sleep(seconds)
    delta = Requests.scrape(kubeconfig).since(before)
    found: dict[str, Any] = {
        "seconds": seconds,
        "apiWrites": delta.count(WRITES),
        "apiReads": delta.count(READS),
        "apiWritesOfOperatorResources": delta.count(WRITES, OPERATOR_RESOURCES),
        "apiReadsOfOperatorResources": delta.count(READS, OPERATOR_RESOURCES),
        "apiWatches": delta.count({"WATCH"}),
        "writes": delta.detail(WRITES),
        "reads": delta.detail(READS),
    }
    if operator is not None:
        found["operatorCpuPercent"] = round(100 * (operator.cpu_seconds() - cpu) / seconds, 2)
        found["labelStudioRequests"] = operator.label_studio_requests() - label_studio
    return found


def note(report: dict[str, Any]) -> str:
    """The measurement beside the one that opened issue #13, as a Markdown table."""
    now, was = report["after"], BEFORE
    operator_writes = was["idleMinuteApiWrites"] - was["idleMinuteApiWritesWithoutOperator"]
    rows = [
        "| | objects | converge | operator RSS | idle minute: operator's API writes / reads "
        "| idle minute: Label Studio requests | operator CPU idle |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| before (timer-driven, issue #13) | {was['objects']} | {was['convergeSeconds']} s "
        f"| {was['operatorRssMiB']} MiB | {operator_writes:,} / {was['idleMinuteApiReads']:,} "
        f"| (not measured) | {was['operatorCpuIdlePercent']}% of a core |",
        f"| after (event-driven) | {now['objects']} | {now['convergeSeconds']} s "
        f"| {now['operatorPeakRssMiB']} MiB | {now['operatorIdleApiWrites']} / "
        f"{now['operatorIdleApiReads']} | {now['idleLabelStudioRequests']} "
        f"| {now['operatorIdleCpuPercent']}% of a core |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="objects of each kind (1000)")
    parser.add_argument(
        "--projects",
        type=int,
        default=None,
        help="AnnotationProjects, if fewer than --count (Label Studio is the slow part)",
    )
    parser.add_argument("--namespaces", type=int, default=4, help="namespaces to spread them (4)")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=1200.0, help="convergence limit (s)")
    parser.add_argument("--kubeconfig", type=Path, default=REPO / ".cluster" / "kubeconfig")
    parser.add_argument("--output", type=Path, default=REPO / "bench-reports" / "operator.json")
    args = parser.parse_args(argv)
    if not args.kubeconfig.exists():
        log(f"no cluster: {args.kubeconfig} is missing (make cluster-up starts one)")
        return 2

    api = config.new_client_from_config(config_file=str(args.kubeconfig))
    subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(args.kubeconfig),
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(REPO / "crds"),
        ],
        check=True,
        capture_output=True,
    )
    wait_for_earlier_runs(api)
    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    projects = args.count if args.projects is None else min(args.projects, args.count)
    bench = Bench(api, args.kubeconfig, args.count, projects, args.namespaces, work)
    operator: OperatorProcess | None = None
    try:
        server = bench.start_label_studio()
        bench.make_nodes()
        bench.make_namespaces(server.token)
        created_s = bench.create_objects(server.url)
        log(f"created {2 * args.count + projects} objects in {created_s:.0f}s")
        operator = OperatorProcess(
            args.kubeconfig, f"bench-{bench.run}-*", work / "operator.log", bench.run
        )
        rss_kib: list[int] = []

        def sample() -> None:
            rss_kib.append(operator.memory_kib("VmRSS") if operator else 0)

        log("starting the operator")
        operator.start()
        live_s = operator.wait_live()
        log(f"the operator answers after {live_s:.1f}s")
        converged_at = bench.wait_converged(operator, args.timeout, sample)
        converge_cpu = operator.cpu_seconds()
        total = max((v for v in converged_at.values() if v is not None), default=None)
        if any(v is None for v in converged_at.values()):
            total = None
        log(f"converged: {converged_at}; an idle minute with the operator")
        with_operator = idle_minute(args.kubeconfig, args.idle_seconds, operator)
        peak_rss = operator.memory_kib("VmHWM")
        operator.stop()
        log("an idle minute without the operator")
        without_operator = idle_minute(args.kubeconfig, args.idle_seconds, None)
        label_studio_requests = with_operator["labelStudioRequests"]
        # The operator's share: requests on what it reads and writes, less those made there
        # while it was stopped (the counters are the API server's, for every client).
        operator_writes = (
            with_operator["apiWritesOfOperatorResources"]
            - without_operator["apiWritesOfOperatorResources"]
        )
        operator_reads = (
            with_operator["apiReadsOfOperatorResources"]
            - without_operator["apiReadsOfOperatorResources"]
        )
        resync = DEFAULT_RESYNC_SECONDS
        report: dict[str, Any] = {
            "run": bench.run,
            "apiServer": api.configuration.host,
            "count": args.count,
            "namespaces": args.namespaces,
            "createSeconds": round(created_s, 1),
            "operatorStartSeconds": round(live_s, 1),
            "convergeSecondsByKind": converged_at,
            "idleWithOperator": with_operator,
            "idleWithoutOperator": without_operator,
            "after": {
                "objects": f"{projects:,} AnnotationProjects + {args.count:,} FineTuneJobs + "
                f"{args.count:,} PrelabelServices",
                "convergeSeconds": total,
                "convergeCpuSeconds": round(converge_cpu, 1),
                "operatorPeakRssMiB": round(peak_rss / 1024),
                "operatorRssSamplesMiB": {
                    "max": round(max(rss_kib, default=0) / 1024),
                    "last": round((rss_kib or [0])[-1] / 1024),
                },
                "operatorIdleApiWrites": max(operator_writes, 0),
                "operatorIdleApiReads": max(operator_reads, 0),
                "readsPerObjectPerResync": round(
                    max(operator_reads, 0)
                    * (resync / args.idle_seconds)
                    / (2 * args.count + projects),
                    4,
                ),
                "idleLabelStudioRequests": label_studio_requests,
                "operatorIdleCpuPercent": with_operator["operatorCpuPercent"],
            },
            "before": BEFORE,
            "doneWhen": {
                "convergeSeconds": 60,
                "operatorRssMB": 300,
                "operatorIdleApiWrites": 0,
                "readsPerObjectPerResync": 1,
            },
        }
        report["note"] = note(report)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print(report["note"])
        log(f"report: {args.output}")
        return 0
    finally:
        if operator is not None:
            operator.stop()
        bench.clean_up()
        log(f"cleaned up; operator log and Label Studio's in {work}")


if __name__ == "__main__":
    sys.exit(main())
