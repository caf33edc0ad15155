"""The Label Studio half of the loop, end to end: the real operator on the local control plane
and the session's real Label Studio server.

The operator is restarted for this module with its webhook receiver on 127.0.0.1 (the flags'
environment defaults), and restarted without it afterwards.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fixtures.cluster import Cluster
from fixtures.labelstudio import LabelStudioServer
from fixtures.operator import (
    OperatorProcess,
    apply,
    b64,
    bound_claim,
    condition,
    eventually,
    get,
    items,
)
from fixtures.operator import status_of as _status_of
from labelloop.api.annotationproject import Routing
from labelloop.api.labelconfig import build_result, parse_label_config, read_result
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.ml_backend import MLBackendClient
from labelloop.loop.active_learning import Candidate, next_batch
from labelloop.loop.annotators import agreement_summary, score_annotators, votes_by_task
from labelloop.steps.webhook import SECRET_HEADER
from paths import SHARED_DATA
from trainer.support import minilm_dir

pytestmark = [pytest.mark.cluster, pytest.mark.labelstudio]

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>'
    '<Choice value="Mixed"/></Choices></View>'
)
SCHEMA = parse_label_config(CONFIG)
TEMPLATE = {
    "baseModel": {"uri": "pvc://models/base/distilbert"},
    "output": {"uri": "pvc://models/reviews"},
}


@pytest.fixture
def receiver(operator: OperatorProcess) -> str:
    """The base URL of the operator's webhook receiver."""
    return operator.webhook_url


@dataclass(frozen=True)
class Loop:
    """The parts a test drives: Label Studio (server and client) and the receiver's URL."""

    server: LabelStudioServer
    ls: LabelStudioClient
    receiver: str


@pytest.fixture
def loop(label_studio: LabelStudioServer, receiver: str) -> Iterator[Loop]:
    with LabelStudioClient(label_studio.url, label_studio.token) as client:
        yield Loop(label_studio, client, receiver)


def project(name: str, url: str, *, token_secret: str = "ls-token", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": name},
        "spec": {
            "labelStudio": {"external": {"url": url}},
            "credentialsSecretRef": {"name": token_secret},
            "project": {"title": f"{name} {secrets.token_hex(3)}", "labelConfig": CONFIG},
            **spec,
        },
    }


def token_secret(token: str, name: str = "ls-token") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"token": b64(token)},
    }


def status_of(kube: Cluster, name: str, ns: str) -> dict[str, Any]:
    return _status_of(kube, "ap", name, ns)


def reviews(count: int) -> list[dict[str, Any]]:
    """Real review sentences: DynaSent R1 (Potts et al., 2021), CC BY 4.0."""
    with SHARED_DATA.open() as lines:
        return [
            {"text": json.loads(line)["sentence"]}
            for _, line in zip(range(count), lines, strict=False)
        ]


def synced(kube: Cluster, name: str, ns: str, **counts: int) -> dict[str, Any] | None:
    """The status once Ready and its counts include `counts`."""
    status = status_of(kube, name, ns)
    have = status.get("counts") or {}
    ok = condition(status, "Ready").get("status") == "True" and all(
        have.get(k) == v for k, v in counts.items()
    )
    return status if ok else None


def annotate(ls: LabelStudioClient, task_id: int, label: str, user: int | None = None) -> int:
    return ls.create_annotation(task_id, build_result(SCHEMA, [label]), completed_by=user).id


def test_project_tasks_counts_and_exactly_one_training_round(
    kube: Cluster, namespace: str, loop: Loop, operator: OperatorProcess
) -> None:
    ns, ls, label_studio, receiver = namespace, loop.ls, loop.server, loop.receiver
    apply(kube, ns, token_secret(label_studio.token))
    data = {"inline": [*reviews(8), {"title": "a row without text"}]}
    training = {"trigger": {"newAnnotations": 5, "minIntervalSeconds": 75}, "template": TEMPLATE}
    apply(kube, ns, project("reviews", label_studio.url, data=data, training=training))

    status = eventually(lambda: synced(kube, "reviews", ns, tasks=8), "project with tasks", 90)
    project_id = status["labelStudio"]["projectId"]
    assert status["import"]["imported"] == 8 and status["import"]["malformed"] == 1
    assert "item 9: no 'text' field" in status["import"]["message"]
    assert (status["taskType"], status["labels"]) == ("single-label", list(SCHEMA.labels))
    assert ls.get_project(project_id).task_count == 8
    tasks = sorted(ls.iter_tasks(project_id), key=lambda t: t.id)

    # The webhook points at the receiver, with a secret header.
    (hook,) = ls.list_webhooks(project_id)
    assert hook.url == f"{receiver}/webhook/{ns}/reviews"
    secret = hook.headers[SECRET_HEADER]
    assert len(secret) == 64
    # Without the header, or with a wrong one, the receiver refuses.
    assert httpx.post(hook.url, json={}).status_code == 401
    assert httpx.post(hook.url, json={}, headers={SECRET_HEADER: "x" * 64}).status_code == 403

    # Four annotations: counted, no round yet; Label Studio's webhooks woke the reconcile (in
    # memory: a wake writes nothing).
    for task in tasks[:4]:
        annotate(ls, task.id, "Positive")
    status = eventually(
        lambda: synced(kube, "reviews", ns, annotations=4, sinceLastTraining=4), "4 annotations"
    )
    assert status["counts"]["annotatedTasks"] == 4
    assert status["labelDistribution"] == {"Positive": 4, "Negative": 0, "Neutral": 0, "Mixed": 0}
    assert items(kube, "finetunejobs", ns) == []

    # The fifth, then a burst of concurrent webhooks and a killed operator mid-way.
    fifth = annotate(ls, tasks[4].id, "Negative")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: httpx.post(hook.url, json={"n": i}, headers={SECRET_HEADER: secret}),
                range(16),
            )
        )
    assert {a.status_code for a in answers} == {202}
    # The same delivery again is a replay.
    replayed = httpx.post(hook.url, json={"n": 0}, headers={SECRET_HEADER: secret})
    assert replayed.status_code == 409
    operator.kill()
    try:
        jobs_before_restart = items(kube, "finetunejobs", ns)
    finally:
        operator.start()
    assert len(jobs_before_restart) <= 1
    job = eventually(lambda: get(kube, "finetunejob", "reviews-r1", ns), "round 1's FineTuneJob")
    assert job["spec"]["annotationProjectRef"] == {
        "name": "reviews",
        "round": 1,
        "lastAnnotationId": fifth,
    }
    assert job["spec"]["baseModel"] == TEMPLATE["baseModel"]
    (owner,) = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("AnnotationProject", "reviews")

    # One more annotation after the restart: counted since the round, and still one job.
    annotate(ls, tasks[5].id, "Neutral")
    status = eventually(
        lambda: synced(kube, "reviews", ns, annotations=6, sinceLastTraining=1), "the 6th"
    )
    assert (status["rounds"], status["lastFineTuneJob"]) == (1, "reviews-r1")
    assert status["lastAnnotationId"] == fifth and status["lastTrainingTime"]
    assert [j["metadata"]["name"] for j in items(kube, "finetunejobs", ns)] == ["reviews-r1"]
    (hook,) = ls.list_webhooks(project_id)  # re-registered with the restarted operator's key
    assert hook.headers[SECRET_HEADER] != secret

    # kubectl get ap shows the counts.
    table = kube.kubectl("get", "ap", "reviews", "-n", ns).stdout.split("\n")
    assert table[0].split()[:7] == [
        "NAME",
        "READY",
        "PROJECT",
        "TASKS",
        "ANNOTATIONS",
        "NEW",
        "ROUNDS",
    ]
    assert table[1].split()[:7] == ["reviews", "True", str(project_id), "8", "6", "1", "1"]

    # Re-applying the same spec imports nothing twice.
    apply(kube, ns, project("reviews", label_studio.url, data=data, training=training))
    assert ls.get_project(project_id).task_count == 8

    # Enough for round 2 at once, but minIntervalSeconds holds it back, then lets it start.
    last = [annotate(ls, t.id, "Positive") for t in (tasks[6], tasks[7], tasks[0], tasks[1])][-1]

    def waiting() -> dict[str, Any] | None:
        s = synced(kube, "reviews", ns, annotations=10, sinceLastTraining=5)
        return s if s and condition(s, "TrainingTriggered").get("reason") == "Waiting" else None

    message = condition(eventually(waiting, "round 2 held back"), "TrainingTriggered")["message"]
    assert "minIntervalSeconds allows the next round in" in message
    assert [j["metadata"]["name"] for j in items(kube, "finetunejobs", ns)] == ["reviews-r1"]
    job = eventually(lambda: get(kube, "finetunejob", "reviews-r2", ns), "round 2", timeout=120)
    assert job["spec"]["annotationProjectRef"]["lastAnnotationId"] == last
    status = eventually(lambda: synced(kube, "reviews", ns, sinceLastTraining=0), "round 2 counted")
    assert (status["rounds"], status["lastFineTuneJob"]) == (2, "reviews-r2")


def test_rejected_label_config_is_a_readable_condition_and_event(
    kube: Cluster, namespace: str, loop: Loop
) -> None:
    ns, ls, label_studio = namespace, loop.ls, loop.server
    apply(kube, ns, token_secret(label_studio.token))
    manifest = project("relabel", label_studio.url, data={"inline": reviews(2)})
    apply(kube, ns, manifest)
    status = eventually(lambda: synced(kube, "relabel", ns, tasks=2), "project", 90)
    (task, _) = ls.iter_tasks(status["labelStudio"]["projectId"])
    annotate(ls, task.id, "Mixed")
    eventually(lambda: synced(kube, "relabel", ns, annotations=1), "the annotation")

    # Dropping a label that annotations use: Label Studio refuses, in its own words.
    manifest["spec"]["project"]["labelConfig"] = CONFIG.replace('<Choice value="Mixed"/>', "")
    apply(kube, ns, manifest)

    def stalled() -> dict[str, Any] | None:
        s = status_of(kube, "relabel", ns)
        return s if condition(s, "Stalled").get("reason") == "LabelConfigRejected" else None

    message = condition(eventually(stalled, "LabelConfigRejected"), "Ready")["message"]
    assert message.startswith("Label Studio rejected the label config: ")
    assert "Mixed" in message
    events = items(kube, "events", ns)
    assert any(
        e["reason"] == "LabelConfigRejected" and e["involvedObject"]["name"] == "relabel"
        for e in events
    )
    # The counts stay.
    assert status_of(kube, "relabel", ns)["counts"]["annotations"] == 1


def test_outage_bad_token_and_recovery(kube: Cluster, namespace: str, loop: Loop) -> None:
    ns, label_studio = namespace, loop.server
    apply(kube, ns, token_secret(label_studio.token), token_secret("0" * 40, "wrong-token"))
    apply(kube, ns, project("outage", label_studio.url, data={"inline": reviews(3)}))
    apply(kube, ns, project("badtoken", label_studio.url, token_secret="wrong-token"))
    eventually(lambda: synced(kube, "outage", ns, tasks=3), "project", 90)

    def reason(name: str, wanted: str) -> dict[str, Any] | None:
        ready = condition(status_of(kube, name, ns), "Ready")
        return ready if ready.get("reason") == wanted else None

    refused = eventually(lambda: reason("badtoken", "LabelStudioAuthFailed"), "auth failure")
    assert refused["status"] == "False" and "wrong-token" in refused["message"]
    assert "0" * 40 not in json.dumps(status_of(kube, "badtoken", ns))

    label_studio.stop()
    try:
        # An idle project learns of the outage from the poller, within a poll (60 s).
        down = eventually(lambda: reason("outage", "LabelStudioUnreachable"), "unreachable", 150)
        assert down["status"] == "False" and label_studio.url in down["message"]
        assert status_of(kube, "outage", ns)["counts"]["tasks"] == 3  # nothing lost
    finally:
        label_studio.start()
    eventually(lambda: synced(kube, "outage", ns, tasks=3), "recovered", 60)


def dynasent_crowd(workers: int) -> list[tuple[str, dict[str, list[str]]]]:
    """DynaSent R1 (Potts, Wu, Geiger & Kiela, 2021; CC BY 4.0): the sentences that at least
    three of the `workers` busiest crowd workers labelled, with those workers' real labels."""
    records = [json.loads(line) for line in SHARED_DATA.open()]
    busy = Counter(w for r in records for ws in r["label_distribution"].values() for w in ws)
    chosen = {w for w, _ in busy.most_common(workers)}
    crowd = []
    for r in records:
        votes = {
            label.capitalize(): [w for w in ws if w in chosen]
            for label, ws in r["label_distribution"].items()
        }
        if sum(map(len, votes.values())) >= 3:
            crowd.append((r["sentence"], votes))
    return crowd


def test_quality_rules_and_annotator_tiers_on_real_crowd_labels(
    kube: Cluster, namespace: str, loop: Loop
) -> None:
    ns, ls, label_studio = namespace, loop.ls, loop.server
    crowd = dynasent_crowd(12)
    apply(kube, ns, token_secret(label_studio.token))
    rules = [{"label": "Neutral", "maxShare": 0.30}, {"label": "Positive", "minShare": 0.30}]
    manifest = project(
        "crowd",
        label_studio.url,
        data={"inline": [{"text": sentence} for sentence, _ in crowd]},
        quality={"rules": rules},
    )
    apply(kube, ns, manifest)
    status = eventually(lambda: synced(kube, "crowd", ns, tasks=len(crowd)), "project", 90)
    project_id = status["labelStudio"]["projectId"]
    task_of = {t.data["text"]: t.id for t in ls.iter_tasks(project_id)}

    suffix = secrets.token_hex(3)
    users: dict[str, int] = {}
    rows = []
    for sentence, votes in crowd:
        for label, workers in votes.items():
            for worker in workers:
                if worker not in users:
                    users[worker] = label_studio.create_user(f"{worker}-{suffix}")
                annotate(ls, task_of[sentence], label, users[worker])
                rows.append((task_of[sentence], str(users[worker]), frozenset([label])))
    total = len(rows)
    status = eventually(lambda: synced(kube, "crowd", ns, annotations=total), "all annotations")

    expected = score_annotators(votes_by_task(rows), Routing())
    assert status["annotators"] == [
        {
            "annotator": s.annotator,
            "annotations": s.annotations,
            "tier": s.tier,
            **({"accuracy": s.accuracy} if s.accuracy is not None else {}),
        }
        for s in expected
    ]
    tiers = Counter(s["tier"] for s in status["annotators"])
    assert tiers["expert"] and tiers["basic"]
    assert 0 < status["agreement"] < 1
    published = status["taskAgreement"]
    kinds = (published["unanimous"], published["majority"], published["split"])
    assert published["tasks"] == sum(kinds) == len(crowd)
    summary = agreement_summary(votes_by_task(rows))
    assert kinds == (summary.unanimous, summary.majority, summary.split)
    lowest = published["lowest"]
    assert len(lowest) == 10
    assert [t["agreement"] for t in lowest] == sorted(t["agreement"] for t in lowest)
    assert [t["agreement"] for t in lowest] == [t.agreement for t in summary.lowest]
    assert summary.unanimous < summary.tasks  # real crowds disagree somewhere

    shares = {label: n / total for label, n in status["labelDistribution"].items()}
    violated = {(v["label"], v["bound"]) for v in status["qualityViolations"]}
    assert violated == ({("Neutral", "maxShare")} if shares["Neutral"] > 0.30 else set()) | (
        {("Positive", "minShare")} if shares["Positive"] < 0.30 else set()
    )
    assert violated, "the crowd subset is expected to break at least one rule"
    quality = condition(status, "QualityRulesMet")
    assert quality["status"] == "False" and quality["reason"] == "RulesViolated"
    assert any(
        e["reason"] == "QualityRulesViolated" and e["involvedObject"]["name"] == "crowd"
        for e in items(kube, "events", ns)
    )


@pytest.fixture(scope="module")
def prelabel_server() -> Iterator[str]:
    """A real prelabel server process: round 0's zero-shot prelabeler (all-MiniLM-L6-v2)
    serving model version `r0` on 127.0.0.1."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "labelloop_trainer", "serve", "--zero-shot"),
            *("--base-model", str(minilm_dir()), "--model-version", "r0"),
            *("--host", "127.0.0.1", "--port", "0", "--threads", "1", "--device", "cpu"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "listening on URL", once the model is loaded
        assert line.startswith("listening on "), f"serve said {line!r}, exit {process.poll()}"
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=20)


def predictions_served(url: str) -> float:
    """The prelabel server's count of tasks it predicted."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("labelloop_prelabel_predictions_total "):
            return float(line.split()[-1])
    raise AssertionError(f"{url}/metrics has no labelloop_prelabel_predictions_total")


def prelabels_of(kube: Cluster, name: str, ns: str, **wanted: Any) -> dict[str, Any] | None:
    found = status_of(kube, name, ns).get("prelabels") or {}
    return found if all(found.get(k) == v for k, v in wanted.items()) else None


def test_prelabels_pushed_in_active_learning_order_once_per_task(
    kube: Cluster, namespace: str, loop: Loop, operator: OperatorProcess, prelabel_server: str
) -> None:
    ns, ls, label_studio = namespace, loop.ls, loop.server
    bound_claim(kube, ns, "models")
    apply(kube, ns, token_secret(label_studio.token))
    service = {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "PrelabelService",
        "metadata": {"name": "pl"},
        "spec": {
            "annotationProjectRef": {"name": "ranked"},
            "model": {"version": "r0", "uri": "pvc://models/reviews/r0"},
            "rollout": {"strategy": "BlueGreen"},
        },
    }
    prelabel = {
        "serviceRef": {"name": "pl"},
        "url": prelabel_server,  # Label Studio and the operator both run on this machine
        "activeLearning": {"strategy": "uncertainty", "batchSize": 5},
    }
    sentences = reviews(14)
    manifest = project("ranked", label_studio.url, data={"inline": sentences[:12]})
    manifest["spec"]["prelabel"] = prelabel
    apply(kube, ns, manifest)

    status = eventually(lambda: synced(kube, "ranked", ns, tasks=12), "project", 90)
    project_id = status["labelStudio"]["projectId"]
    waiting = condition(status, "PrelabelsPushed")
    assert (waiting["status"], waiting["reason"]) == ("False", "WaitingForModel")
    assert waiting["message"] == "PrelabelService pl not found"
    assert ls.list_ml_backends(project_id) == []

    # The PrelabelService's pods are kwok's and serve nothing; its active version is what
    # the project's predictions must carry, and the local server serves that version.
    apply(kube, ns, service)
    done = eventually(
        lambda: prelabels_of(kube, "ranked", ns, predictedTasks=12, pendingTasks=0),
        "every task prelabelled",
        120,
    )
    assert (done["modelVersion"], done["url"], done["service"]) == ("r0", prelabel_server, "pl")
    assert condition(status_of(kube, "ranked", ns), "PrelabelsPushed")["status"] == "True"

    # Registered as the project's one ML backend, connected.
    (backend,) = ls.list_ml_backends(project_id)
    assert (backend.id, backend.url, backend.title) == (
        done["mlBackendId"],
        prelabel_server,
        "labelloop: pl",
    )
    assert (backend.state, backend.model_version) == ("CO", "r0")

    # Each task holds one prediction of r0 with its score, as the server answers it.
    tasks = sorted(ls.iter_tasks(project_id), key=lambda t: t.id)
    with MLBackendClient(prelabel_server) as server:
        answers = server.predict([{"id": t.id, "data": t.data} for t in tasks], CONFIG, project_id)
    own = {t.id: a for t, a in zip(tasks, answers, strict=True)}
    for task in tasks:
        (prediction,) = task.predictions
        assert prediction.model_version == "r0"
        assert prediction.score == pytest.approx(own[task.id]["score"], abs=1e-6)
        assert read_result(SCHEMA, prediction.result) == read_result(SCHEMA, own[task.id]["result"])

    # Batches of five, least confident first: the first import holds the five tasks the
    # server itself is least sure of, the second the next five.
    ranking = next_batch(
        [Candidate(i, a["score"], a["probabilities"]) for i, a in own.items()], "uncertainty", 12
    )
    by_import = [p.task_id for p in sorted((t.predictions[0] for t in tasks), key=lambda p: p.id)]
    assert set(by_import[:5]) == set(ranking[:5])
    assert set(by_import[5:10]) == set(ranking[5:10])
    scores = {i: a["score"] for i, a in own.items()}
    assert max(scores[i] for i in by_import[:5]) <= min(scores[i] for i in by_import[5:])

    # A restarted operator and two new tasks: only the new ones get a prediction.
    operator.kill()
    operator.start()
    manifest["spec"]["data"] = {"inline": sentences}
    apply(kube, ns, manifest)
    eventually(
        lambda: prelabels_of(kube, "ranked", ns, predictedTasks=14, pendingTasks=0),
        "the new tasks prelabelled",
        120,
    )
    tasks = list(ls.iter_tasks(project_id))
    assert len(tasks) == 14
    assert all(len(t.predictions) == 1 for t in tasks)
    assert [b.id for b in ls.list_ml_backends(project_id)] == [backend.id]
    # The server was asked once per task by each operator process (it remembers answers
    # across passes, not restarts: 12, then the 2 new ones), plus this test's 12.
    assert predictions_served(prelabel_server) == 12 + 2 + 12

    # The prelabel server moved away: a condition and an Event, and the rest of the pass
    # stands (the new task is counted, the project stays Ready).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{probe.getsockname()[1]}"
    manifest["spec"]["prelabel"]["url"] = gone
    manifest["spec"]["data"] = {"inline": [*sentences, *reviews(15)[14:]]}
    apply(kube, ns, manifest)

    def refused() -> dict[str, Any] | None:
        s = synced(kube, "ranked", ns, tasks=15)
        return s if s and condition(s, "PrelabelsPushed").get("status") == "False" else None

    status = eventually(refused, "the prelabel failure reported")
    failed = condition(status, "PrelabelsPushed")
    assert failed["reason"] == "MLBackendRefused" and gone in failed["message"]
    assert f"ML backend at {gone}/predict: no answer" in failed["message"]
    assert status["prelabels"]["pendingTasks"] == 1
    assert any(
        e["reason"] == "MLBackendRefused" and e["involvedObject"]["name"] == "ranked"
        for e in items(kube, "events", ns)
    )

    # Annotators review prelabels: three kept, two overturned. The project publishes that per
    # version, and the PrelabelService sees no accuracy yet (fewer reviews than it trusts).
    for i, task in enumerate(sorted(tasks, key=lambda t: t.id)[:5]):
        shown = read_result(SCHEMA, task.predictions[0].result)
        other = [next(label for label in SCHEMA.labels if [label] != shown)]
        ls.create_annotation(task.id, build_result(SCHEMA, shown if i < 3 else other))

    def reviewed() -> list[dict[str, Any]] | None:
        published = (status_of(kube, "ranked", ns).get("prelabels") or {}).get("acceptance")
        return published if published and published[0]["reviewed"] == 5 else None

    published = eventually(reviewed, "prelabel acceptance published")
    assert published == [{"modelVersion": "r0", "accepted": 3, "reviewed": 5}]
    (version,) = _status_of(kube, "prelabelservice", "pl", ns)["versions"]
    assert version["version"] == "r0" and version.get("prelabelAccuracy") is None
