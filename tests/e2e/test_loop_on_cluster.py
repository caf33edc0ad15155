"""The whole loop on the local cluster's real node, with the project's own images.

One scenario, in order (the tests of this module share it and run in file order):

1. A project on the example's managed Label Studio (two replicas, PostgreSQL), with DynaSent
   tasks, a training template (CPU, all-MiniLM-L6-v2 from the base-model volume) and a
   PrelabelService with autoPromote. Two rounds are annotated through Label Studio's API with
   the sentences' real crowd labels; each trains in a real pod, reports progress and its result,
   is gated, rolled out as a real Deployment, and prelabels the remaining tasks in Label Studio.
   A client calls `/predict` through the Service all along: no request may fail. In round 2 a
   Label Studio replica is deleted while the operator counts, and the operator's leader pod
   between the round's trigger and its Job's end: one FineTuneJob per round, exact counts.
2. A canary to a new version that waits (Inconclusive) while too few annotator decisions judge
   it, then moves on (the leader is deleted meanwhile); and a version whose pods never become
   Ready, rolled back while the active one keeps serving every request.
3. A FineTuneJob on two nodes (two pods of the Indexed Job, gloo over the rendezvous Service).

Each round prints a row (labels, version, eval macro-F1, prelabel accuracy on the unlabelled
tasks, seconds from the round's last annotation to the new version's predictions in Label
Studio); the table is also written to bench-reports/e2e.json.

DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021), CC BY 4.0.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import pytest

from fixtures.cluster import Cluster, wait_for
from fixtures.local_env import (
    LABEL_STUDIO_URL,
    LOCAL,
    TOKEN_SECRET,
    figure,
    kill_leader,
    label_studio_pods,
    leader_samples,
    ready_label_studio_ips,
)
from fixtures.operator import condition, get, items, status_of
from labelloop.api.labelconfig import LabelSchema, build_result, parse_label_config
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.models import Task
from labelloop.local.demo import Example, load_examples
from labelloop.loop.importing import KEY_FIELD, row_key
from paths import REPO_ROOT, SHARED_DATA

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

TASKS = 500
PER_ROUND = 150
# Rounds run until at least ROUNDS have trained and a version serves: a round's version must
# beat what serves (before any, the base model's zero-shot guess) on its held-out annotations,
# which 150 noisy crowd labels may not do.
ROUNDS = 2
MAX_ROUNDS = 4
SEED = 7
LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>"""
# A round on the 2-core node: the trainer's start, export, training and evaluation, then the
# prelabel server's start and the prelabel pass.
ROUND_TIMEOUT = 1200
ROLLOUT = {"strategy": "Canary", "steps": [50, 100], "stepSeconds": 5, "readyDeadlineSeconds": 240}
REPORT = REPO_ROOT / "bench-reports" / "e2e.json"


@dataclass
class Row:
    round: int
    labels: int
    version: str | None
    eval_macro_f1: float | None
    gate: str
    prelabel_accuracy: float | None
    unlabelled: int
    seconds_to_predictions: float | None
    train_seconds: float | None

    HEADER = (
        "round  labels  version                      eval F1  gate (candidate vs serving, F1)"
        "               prelabel acc  unlabelled  s to predictions  training s"
    )

    def line(self) -> str:
        def num(x: float | None, width: int, digits: int) -> str:
            return f"{x:{width}.{digits}f}" if x is not None else f"{'-':>{width}}"

        return (
            f"{self.round:5d}  {self.labels:6d}  {self.version or '-':27s}  "
            f"{num(self.eval_macro_f1, 7, 3)}  {self.gate:44s}  "
            f"{num(self.prelabel_accuracy, 12, 3)}  "
            f"{self.unlabelled:10d}  {num(self.seconds_to_predictions, 16, 0)}  "
            f"{num(self.train_seconds, 10, 0)}"
        )


@dataclass
class Prober:
    """Calls `/predict` through a Service, one fresh connection per request (as kube-proxy
    balances connections, not requests), and keeps every failure and every version seen."""

    url: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Prober:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def _run(self) -> None:
        body = {
            "tasks": [{"id": 1, "data": {"text": "The waiter was friendly."}}],
            "label_config": LABEL_CONFIG,
        }
        while not self._stop.is_set():
            try:
                answer = httpx.post(
                    f"{self.url}/predict",
                    json=body,
                    timeout=30,
                    headers={"Connection": "close"},
                )
                answer.raise_for_status()
                version = answer.json()["model_version"]
                if not self.versions or self.versions[-1] != version:
                    self.versions.append(version)
                self.ok += 1
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
            self._stop.wait(0.1)


@dataclass
class Scenario:
    cluster: Cluster
    name: str
    service: str
    ls: LabelStudioClient
    schema: LabelSchema
    examples: dict[str, Example]
    rng: random.Random
    rows: list[Row] = field(default_factory=list)
    annotated: int = 0

    @property
    def project_id(self) -> int:
        status = status_of(self.cluster, "annotationproject", self.name, LOCAL)
        return int(status["labelStudio"]["projectId"])

    def tasks(self) -> list[Task]:
        return list(self.ls.iter_tasks(self.project_id))

    def gold(self, task: Task) -> Example:
        return self.examples[str(task.meta[KEY_FIELD])]

    def annotate(self, task_ids: list[int]) -> None:
        """One annotation per task: the label of one of the sentence's real crowd workers."""
        by_id = {t.id: t for t in self.tasks()}
        for task_id in task_ids:
            _worker, label = self.rng.choice(self.gold(by_id[task_id]).answers)
            self.ls.create_annotation(task_id, build_result(self.schema, [label]))
            self.annotated += 1

    def service_url(self) -> str:
        service = get(self.cluster, "service", self.service, LOCAL)
        assert service is not None
        return f"http://{service['spec']['clusterIP']}:9090"

    def prelabel_status(self) -> dict[str, Any]:
        return status_of(self.cluster, "prelabelservice", self.service, LOCAL)


def _project(name: str, service: str, output: str) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": name, "namespace": LOCAL},
        "spec": {
            "labelStudio": {"external": {"url": LABEL_STUDIO_URL}},
            "credentialsSecretRef": {"name": TOKEN_SECRET, "key": "token"},
            "project": {"title": f"labelloop e2e {name}", "labelConfig": LABEL_CONFIG},
            "data": {"configMapRef": {"name": f"{name}-tasks", "key": "tasks.jsonl"}},
            "training": {
                "trigger": {"newAnnotations": PER_ROUND},
                "template": _training_template(output),
            },
            "prelabel": {
                "serviceRef": {"name": service},
                "activeLearning": {"strategy": "uncertainty", "batchSize": TASKS},
            },
        },
    }


def _training_template(output: str) -> dict[str, Any]:
    return {
        "baseModel": {"uri": "pvc://base-models/minilm"},
        "output": {"uri": output},
        "hyperparameters": {
            "learningRate": 2.0e-3,
            "epochs": 3,
            "batchSize": 8,
            "maxSequenceLength": 64,
            "evalSplit": 0.2,
            "earlyStopping": {"metric": "f1", "patience": 3},
        },
        "resources": {"gpusPerNode": 0},
        "evaluation": {
            "metrics": ["accuracy", "f1"],
            "promotion": {"metric": "f1", "minimum": 0.3, "mustImprove": True},
        },
    }


def _prelabel_service(name: str, project: str) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "PrelabelService",
        "metadata": {"name": name, "namespace": LOCAL},
        "spec": {
            "annotationProjectRef": {"name": project},
            "model": {"fineTuneJobRef": {"name": f"{project}-r1"}},
            "autoPromote": True,
            "replicas": 1,
            "rollout": ROLLOUT,
            "revisionHistoryLimit": 3,
        },
    }


@pytest.fixture(scope="module")
def scenario(local_env: Cluster, token: str) -> Iterator[Scenario]:
    cluster = local_env
    name = f"loop-{uuid.uuid4().hex[:5]}"
    service = f"{name}-prelabel"
    wait_for(
        lambda: (
            (get(cluster, "job", "base-model-minilm", LOCAL) or {})
            .get("status", {})
            .get("succeeded")
        ),
        timeout=300,
        interval=2,
        what="the base model copied onto its volume (examples/local/30-models.yaml)",
    )
    schema = parse_label_config(LABEL_CONFIG)
    examples, _dropped = load_examples(SHARED_DATA, schema, None, None)
    chosen = random.Random(SEED).sample(examples, TASKS)
    tasks = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-tasks", "namespace": LOCAL},
        "data": {"tasks.jsonl": "".join(json.dumps(e.data) + "\n" for e in chosen)},
    }
    objects = [
        tasks,
        _project(name, service, f"pvc://models/{name}"),
        _prelabel_service(service, name),
    ]
    for obj in objects:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    ips = ready_label_studio_ips(cluster, 2)
    assert ips is not None
    ls = LabelStudioClient(f"http://{ips[0]}:8080", token, timeout=60)
    try:

        def imported() -> bool:
            status = status_of(cluster, "annotationproject", name, LOCAL)
            ok = condition(status, "Ready").get("status") == "True"
            return ok and (status.get("counts") or {}).get("tasks") == TASKS

        wait_for(imported, timeout=300, interval=2, what=f"project {name} synced with its tasks")
        yield Scenario(
            cluster,
            name,
            service,
            ls,
            schema,
            {row_key(e.data): e for e in chosen},
            random.Random(SEED),
        )
    finally:
        ls.close()
        # FineTuneJobs and the prelabel Deployments go with their owners.
        cluster.kubectl("delete", "prelabelservice", service, "-n", LOCAL, "--wait=false")
        cluster.kubectl("delete", "annotationproject", name, "-n", LOCAL, "--wait=false")
        cluster.kubectl("delete", "configmap", f"{name}-tasks", "-n", LOCAL, "--wait=false")


def _project_jobs(s: Scenario) -> list[str]:
    """The names of the project's FineTuneJobs."""
    return [
        j["metadata"]["name"]
        for j in items(s.cluster, "finetunejobs", LOCAL)
        if (j["spec"].get("annotationProjectRef") or {}).get("name") == s.name
    ]


def _round_job(s: Scenario, number: int) -> dict[str, Any]:
    def started() -> str | None:
        status = status_of(s.cluster, "annotationproject", s.name, LOCAL)
        return status.get("lastFineTuneJob") if status.get("rounds", 0) >= number else None

    name = wait_for(started, timeout=180, interval=1, what=f"round {number} to start")
    jobs = _project_jobs(s)
    assert len(jobs) == number, jobs
    job = get(s.cluster, "finetunejob", name, LOCAL)
    assert job is not None and job["spec"]["annotationProjectRef"]["round"] == number
    return job


def _finish(s: Scenario, name: str) -> tuple[dict[str, Any], list[int]]:
    """The FineTuneJob's final status, and the training steps its live progress showed."""
    steps: list[int] = []

    def finished() -> dict[str, Any] | None:
        status = status_of(s.cluster, "finetunejob", name, LOCAL)
        step = (status.get("progress") or {}).get("step")
        if status.get("phase") == "Running" and step:
            steps.append(int(step))
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_for(finished, timeout=ROUND_TIMEOUT, interval=1, what=f"{name} to finish")
    assert status["phase"] == "Succeeded", status
    return status, steps


def _trainer_pods(s: Scenario, job: str) -> list[dict[str, Any]]:
    return items(s.cluster, "pods", LOCAL, f"job-name={job}")


def _predictions(s: Scenario, version: str) -> tuple[list[Task], dict[int, tuple[str, float]]]:
    """The unlabelled tasks, and each one's prediction of `version`: (label, score)."""
    unlabelled = [t for t in s.tasks() if not t.annotations]
    found: dict[int, tuple[str, float]] = {}
    for task in unlabelled:
        for p in task.predictions:
            if p.model_version == version and p.score is not None:
                labels = p.result[0]["value"]["choices"] if p.result else []
                found[task.id] = (labels[0] if labels else "", p.score)
    return unlabelled, found


def _serving_everywhere(s: Scenario, version: str) -> tuple[list[Task], dict[int, Any]] | None:
    unlabelled, found = _predictions(s, version)
    return (unlabelled, found) if len(found) == len(unlabelled) else None


def test_two_rounds_train_roll_out_and_prelabel_on_the_real_node(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    s = scenario
    serving: str | None = None
    # The Service exists from the first version on; from then, a client calls it throughout.
    with contextlib.ExitStack() as probing:
        prober: Prober | None = None
        for number in range(1, MAX_ROUNDS + 1):
            if number > ROUNDS and serving is not None:
                break
            status = status_of(s.cluster, "annotationproject", s.name, LOCAL)
            queue = ((status.get("prelabels") or {}).get("lastBatch")) or []
            if serving is not None:
                # Annotators take the tasks in the order the operator queued them: the least
                # confident (one from each cluster of similar tasks) first. Status lists the
                # queue's first 100; they go on with the least confident predictions left.
                _unlabelled, found = _predictions(s, serving)
                queued = [found[t][1] for t in queue[:PER_ROUND] if t in found]
                rest = [score for t, (_label, score) in found.items() if t not in queue]
                assert sum(queued) / len(queued) < sum(rest) / len(rest), "queue not uncertain"
                after = sorted((t for t in found if t not in queue), key=lambda t: found[t][1])
                batch = [*queue, *after][:PER_ROUND]
            else:
                batch = [t.id for t in s.tasks() if not t.annotations][:PER_ROUND]
            assert len(batch) == PER_ROUND
            if number == 2:
                # A Label Studio replica lost while the operator counts through the Service:
                # the other serves, and no annotation is lost or counted twice.
                half = PER_ROUND // 2
                s.annotate(batch[:half])
                _kill_other_label_studio_replica(s)
                s.annotate(batch[half:])
            else:
                s.annotate(batch)
            annotated_at = time.monotonic()

            job = _round_job(s, number)
            name = job["metadata"]["name"]
            if number == 2:
                # The operator's leader lost between the round's trigger and its Job's end: the
                # standby takes over, and the round still has exactly one FineTuneJob.
                kill_leader(s.cluster)
            final, steps = _finish(s, name)
            version = final["modelVersion"]
            assert final["metrics"]["macro_f1"] > 0 and final["dataset"]["count"] == s.annotated
            assert steps, f"{name} showed no live progress while it ran"
            pods = _trainer_pods(s, final["jobName"])
            assert [p["spec"]["nodeName"] for p in pods] == ["real-0"]
            terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
            assert json.loads(terminated["message"])["modelVersion"] == version
            job_file = json.loads(
                get(s.cluster, "configmap", final["jobName"], LOCAL)["data"]["job.json"]  # type: ignore[index]
            )
            verdict = final.get("promotion") or {}
            if serving is None:
                assert "previousVersionDir" not in job_file
            else:
                # The round must beat the serving version on its own held-out split.
                assert job_file["previousVersionDir"].endswith(f"/{serving}")
            if verdict.get("passed"):
                serving = version
            counts = status_of(s.cluster, "annotationproject", s.name, LOCAL)["counts"]
            assert counts["annotations"] == s.annotated  # no annotation lost or counted twice
            if serving is None:  # nothing serves yet: no prelabels to measure
                s.rows.append(_row(s, number, final, accuracy=None, unlabelled=0, seconds=None))
                continue

            def active(version: str = serving) -> bool:
                return s.prelabel_status().get("activeVersion") == version

            def everywhere(version: str = serving) -> tuple[list[Task], dict[int, Any]] | None:
                return _serving_everywhere(s, version)

            wait_for(active, timeout=600, interval=1, what=f"{serving} active")
            unlabelled, found = wait_for(
                everywhere,
                timeout=600,
                interval=2,
                what=f"predictions of {serving} on every unlabelled task",
            )
            seconds = time.monotonic() - annotated_at
            right = sum(found[t.id][0] == s.gold(t).gold for t in unlabelled)
            took = round(seconds, 1) if serving == version else None
            s.rows.append(
                _row(
                    s,
                    number,
                    final,
                    accuracy=right / len(unlabelled),
                    unlabelled=len(unlabelled),
                    seconds=took,
                )
            )
            if prober is None:
                prober = probing.enter_context(Prober(s.service_url()))

    assert prober is not None and serving is not None, "no round's version passed its gate"
    # One FineTuneJob per round, also after the leader was lost mid-round.
    assert len(_project_jobs(s)) == len(s.rows), _project_jobs(s)
    _check_operator_metrics(s, serving)
    with capsys.disabled():
        _report(s, prober)
    assert prober.failures == [], prober.failures
    assert prober.ok > 0


def _check_operator_metrics(s: Scenario, serving: str) -> None:
    """The loop's figures after the rounds, on the acting replica's /metrics: what a
    Prometheus scraping the operator (and the chart's dashboard) shows."""
    project = {"namespace": LOCAL, "project": s.name}
    served = s.rows[[r.version for r in s.rows].index(serving)]
    expected = [
        ("labelloop_project_annotations", project, float(s.annotated)),
        ("labelloop_project_rounds", project, float(len(s.rows))),
        ("labelloop_model_gate_passed", {**project, "version": serving}, 1.0),
        ("labelloop_model_metric", {**project, "version": serving, "metric": "macro_f1"},
         served.eval_macro_f1),
    ]  # fmt: skip

    def scraped() -> list[float | None] | None:
        samples = leader_samples(s.cluster)
        found = [figure(samples, metric, labels) for metric, labels, _ in expected]
        return found if found == [value for *_, value in expected] else None

    wait_for(scraped, timeout=120, interval=2, what=f"the loop's figures on /metrics: {expected}")


def _row(
    s: Scenario,
    number: int,
    final: dict[str, Any],
    *,
    accuracy: float | None,
    unlabelled: int,
    seconds: float | None,
) -> Row:
    verdict = final.get("promotion") or {}
    gate = "passed" if verdict.get("passed") else "failed"
    if verdict.get("servingScore") is not None:
        gate += f" ({verdict['candidateScore']:.3f} vs {verdict['servingVersion']} "
        gate += f"{verdict['servingScore']:.3f})"
    return Row(
        round=number,
        labels=s.annotated,
        version=final["modelVersion"],
        eval_macro_f1=final["metrics"].get("macro_f1"),
        gate=gate,
        prelabel_accuracy=accuracy,
        unlabelled=unlabelled,
        seconds_to_predictions=seconds,
        train_seconds=_seconds_between(final.get("startTime"), final.get("completionTime")),
    )


def _kill_other_label_studio_replica(s: Scenario) -> None:
    """Deletes a Label Studio pod other than the one this test talks to."""
    mine = s.ls.url.removeprefix("http://").split(":")[0]
    others = [p for p in label_studio_pods(s.cluster) if p["status"].get("podIP") != mine]
    assert others, "no second Label Studio replica"
    s.cluster.kubectl("delete", "pod", others[0]["metadata"]["name"], "-n", LOCAL, "--wait=false")


def _seconds_between(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _report(s: Scenario, prober: Prober) -> None:
    table = "\n".join([Row.HEADER, *(r.line() for r in s.rows)])
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(
        json.dumps(
            {
                "project": s.name,
                "rounds": [asdict(r) for r in s.rows],
                "probe": {
                    "ok": prober.ok,
                    "failed": len(prober.failures),
                    "versions": prober.versions,
                },
                "dataset": "DynaSent R1 (Potts et al., ACL-IJCNLP 2021), CC BY 4.0",
            },
            indent=2,
        )
    )
    print(f"\nthe loop on the local cluster ({s.name}):\n{table}\n", flush=True)


def _patch_service(s: Scenario, spec: dict[str, Any]) -> None:
    s.cluster.kubectl(
        "patch",
        "prelabelservice",
        s.service,
        "-n",
        LOCAL,
        "--type=merge",
        "-p",
        json.dumps({"spec": spec}),
    )


def test_canary_waits_when_inconclusive_and_a_broken_version_rolls_back_without_failures(
    scenario: Scenario,
) -> None:
    s = scenario
    status = s.prelabel_status()
    active = status["activeVersion"]
    current = next(v for v in status["versions"] if v["version"] == active)
    canary = f"canary-{uuid.uuid4().hex[:6]}"
    model = {
        "fineTuneJobRef": None,
        "version": canary,
        "uri": current["uri"],
        "baseModel": {"uri": current["baseModelUri"]},
    }
    with Prober(s.service_url()) as prober:
        # No annotator has judged the canary's prelabels: it waits at its first step.
        _patch_service(
            s,
            {
                "autoPromote": False,
                "model": model,
                "rollout": {**ROLLOUT, "minPrelabelAccuracy": 0.5},
            },
        )

        def inconclusive() -> dict[str, Any] | None:
            status = s.prelabel_status()
            versions = {v["version"]: v for v in status.get("versions") or []}
            waiting = condition(status, "Reconciling").get("reason") == "Inconclusive"
            serving = versions.get(canary, {}).get("readyReplicas") == 1
            return status if waiting and serving else None

        status = wait_for(inconclusive, timeout=300, interval=1, what=f"{canary} Inconclusive")
        assert status["activeVersion"] == active and status["canaryStep"] == 0
        # The leader lost during the rollout: the new one carries it on.
        kill_leader(s.cluster)
        # Judged without the accuracy rule, it goes on through its steps.
        _patch_service(s, {"rollout": {**ROLLOUT, "minPrelabelAccuracy": 0}})
        wait_for(
            lambda: s.prelabel_status().get("activeVersion") == canary,
            timeout=300,
            interval=1,
            what=f"{canary} active",
        )
        canary_probe = (prober.ok, list(prober.failures))

    assert canary_probe[1] == [] and canary_probe[0] > 0, canary_probe

    broken = f"broken-{uuid.uuid4().hex[:6]}"
    with Prober(s.service_url()) as prober:
        _patch_service(
            s,
            {
                "model": {**model, "version": broken, "uri": f"pvc://models/{s.name}/missing"},
                "rollout": {**ROLLOUT, "readyDeadlineSeconds": 60},
            },
        )

        def rolled_back() -> dict[str, Any] | None:
            status = s.prelabel_status()
            return status if condition(status, "Stalled").get("reason") == "RolledBack" else None

        status = wait_for(rolled_back, timeout=300, interval=1, what=f"{broken} rolled back")
        time.sleep(5)  # the broken version's pods go while the probe goes on
    assert status["activeVersion"] == canary
    assert "not Ready within readyDeadlineSeconds (60s)" in condition(status, "Stalled")["message"]
    assert prober.failures == [] and prober.ok > 0, prober.failures
    # Everything answered came from the version that was active before (its files are the
    # same, so the server names the directory's version).
    assert len(set(prober.versions)) == 1, prober.versions


def test_a_two_node_job_trains_with_gloo_on_the_real_node(scenario: Scenario) -> None:
    s = scenario
    name = f"{s.name}-two-nodes"
    template = _training_template(f"pvc://models/{s.name}")
    job = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name, "namespace": LOCAL},
        "spec": {
            **template,
            "hyperparameters": {**template["hyperparameters"], "epochs": 1},
            "resources": {"nodes": 2, "gpusPerNode": 0},
            "evaluation": {"metrics": ["accuracy", "f1"]},
            "annotationProjectRef": {"name": s.name},
        },
    }
    s.cluster.kubectl("apply", "-f", "-", input=json.dumps(job))
    try:
        final, _steps = _finish(s, name)
        pods = _trainer_pods(s, final["jobName"])
        indexes = sorted(
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods
        )
        assert indexes == ["0", "1"]
        assert {p["spec"]["nodeName"] for p in pods} == {"real-0"}
        assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
        # The rank-0 pod's address is the rendezvous: a headless Service of the job.
        service = get(s.cluster, "service", final["jobName"], LOCAL)
        assert service is not None and service["spec"]["clusterIP"] == "None"
        assert final["dataset"]["count"] == s.annotated
    finally:
        s.cluster.kubectl("delete", "finetunejob", name, "-n", LOCAL, "--wait=false")
