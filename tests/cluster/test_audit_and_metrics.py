"""The loop seen from outside, on the real operator: its decisions as Events and structured log
lines, its figures at /metrics, and no credential in any of them.

One external project on the session's Label Studio reaches a training round and breaks a
quality rule; a managed one (its server never starts on kwok) gets its Secrets made and a
PostgreSQL password to keep. Then the operator's log, the namespace's Events and the objects'
status are searched for every credential there is: the Label Studio token, the managed
server's generated token, secret key and admin password, the PostgreSQL password and the
webhook secret header.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from typing import Any

import pytest

from fixtures.cluster import Cluster
from fixtures.labelstudio import LabelStudioServer
from fixtures.operator import (
    OperatorProcess,
    apply,
    b64,
    condition,
    eventually,
    get,
    items,
    status_of,
)
from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.steps.webhook import SECRET_HEADER
from manifest_cases import LABEL_CONFIG

pytestmark = [pytest.mark.cluster, pytest.mark.labelstudio]

SCHEMA = parse_label_config(LABEL_CONFIG)
TEMPLATE = {
    "baseModel": {"uri": "pvc://models/base/minilm"},
    "output": {"uri": "pvc://models/audit"},
}


def secret(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: b64(v) for k, v in data.items()},
    }


def audited_project(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "audited"},
        "spec": {
            "labelStudio": {"external": {"url": url}},
            "credentialsSecretRef": {"name": "ls-token"},
            "project": {"title": f"audited {secrets.token_hex(3)}", "labelConfig": LABEL_CONFIG},
            "data": {"inline": [{"text": f"review number {i}"} for i in range(6)]},
            "quality": {"rules": [{"label": "Positive", "maxShare": 0.5}]},
            "training": {"trigger": {"newAnnotations": 3}, "template": TEMPLATE},
        },
    }


def managed_project() -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": "managed"},
        "spec": {
            "labelStudio": {
                "managed": {
                    "image": "heartexlabs/label-studio:1.23.2",
                    "database": {"secretRef": {"name": "postgres"}},
                }
            },
            "credentialsSecretRef": {"name": "managed-token"},
            "project": {"title": "managed project", "labelConfig": LABEL_CONFIG},
        },
    }


def credentials(
    kube: Cluster, ns: str, label_studio: LabelStudioServer, hooks: list[str]
) -> set[str]:
    """Every credential of the namespace: the values of its Secrets (the operator's own
    included), the Label Studio token and the webhook headers."""
    found = {label_studio.token, *hooks}
    for obj in items(kube, "secrets", ns):
        for value in (obj.get("data") or {}).values():
            found.add(base64.b64decode(value).decode(errors="replace"))
    return {c for c in found if len(c) >= 8}  # a short value (a port, a user) is no secret


def sample(metrics: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        have = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and have == wanted:
            return float(value)
    return None


def test_decisions_are_events_log_lines_and_metrics_and_no_credential_leaks(
    kube: Cluster, namespace: str, label_studio: LabelStudioServer, operator: OperatorProcess
) -> None:
    ns = namespace
    pg_password = secrets.token_urlsafe(24)
    apply(
        kube,
        ns,
        secret("ls-token", token=label_studio.token),
        secret(
            "postgres", host="pg", port="5432", database="ls", username="ls", password=pg_password
        ),
        audited_project(label_studio.url),
        managed_project(),
    )

    def synced() -> dict[str, Any] | None:
        status = status_of(kube, "ap", "audited", ns)
        return status if condition(status, "Ready").get("status") == "True" else None

    project_id = eventually(synced, "the project in sync", 90)["labelStudio"]["projectId"]
    with LabelStudioClient(label_studio.url, label_studio.token) as ls:
        for task in list(ls.iter_tasks(project_id))[:3]:
            ls.create_annotation(task.id, build_result(SCHEMA, ["Positive"]))
        eventually(lambda: get(kube, "finetunejob", "audited-r1", ns), "round 1's FineTuneJob", 90)
        hooks = [
            h.headers[SECRET_HEADER]
            for h in ls.list_webhooks(project_id)
            if SECRET_HEADER in h.headers
        ]
    assert hooks, "the project's webhook carries its secret"
    eventually(lambda: get(kube, "secret", "managed-token", ns), "the managed server's token")

    # Each decision is an Event on the project, with its figures.
    def posted(reason: str) -> dict[str, Any] | None:
        return next(
            (
                e
                for e in items(kube, "events", ns)
                if e["reason"] == reason and e["involvedObject"]["name"] == "audited"
            ),
            None,
        )

    started = eventually(lambda: posted("TrainingRoundStarted"), "the round's Event")
    assert "round 1: FineTuneJob audited-r1" in started["message"]
    violated = eventually(lambda: posted("QualityRulesViolated"), "the quality Event")
    assert violated["type"] == "Warning" and "Positive" in violated["message"]

    # ... and one structured log line.
    def logged(decision: str) -> dict[str, Any] | None:
        for line in operator.log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a plain line (a traceback), or one still being written
                continue
            if (
                record.get("decision") == decision
                and record.get("object", {}).get("namespace") == ns
            ):
                return dict(record)
        return None

    line = eventually(lambda: logged("TrainingRoundStarted"), "the round's log line")
    assert line["project"] == "audited"
    assert line["figures"]["round"] == 1 and line["figures"]["fineTuneJob"] == "audited-r1"
    assert line["figures"]["annotations"] == 3

    # The loop's figures at /metrics.
    def scraped() -> str | None:
        with urllib.request.urlopen(operator.metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        return (
            text
            if sample(text, "labelloop_project_rounds", namespace=ns, project="audited") == 1
            else None
        )

    metrics = eventually(scraped, "the round at /metrics")
    project = {"namespace": ns, "project": "audited"}
    assert sample(metrics, "labelloop_project_annotations", **project) == 3
    assert sample(metrics, "labelloop_project_tasks", **project) == 6
    assert sample(metrics, "labelloop_project_quality_violations", **project) == 1
    phases = ("Pending", "Running", "Succeeded", "Failed")
    jobs = [sample(metrics, "labelloop_finetunejobs", **project, phase=p) or 0 for p in phases]
    assert sum(jobs) == 1
    decision = {"kind": "AnnotationProject", **project, "outcome": ""}
    assert (
        sample(metrics, "labelloop_decisions_total", **decision, decision="TrainingRoundStarted")
        or 0
    ) >= 1
    assert "labelloop_label_studio_request_duration_seconds_bucket" in metrics

    # No credential in the log, the Events or any object's status.
    texts = {
        "the operator's log": operator.log.read_text(errors="replace"),
        "the Events": json.dumps(items(kube, "events", ns)),
        "the status": json.dumps(
            [o.get("status") for kind in ("ap", "ftj", "pls") for o in items(kube, kind, ns)]
        ),
        "/metrics": metrics,
    }
    found = credentials(kube, ns, label_studio, hooks)
    assert pg_password in found and label_studio.token in found and set(hooks) <= found
    leaks = [(where, c[:4] + "...") for where, text in texts.items() for c in found if c in text]
    assert leaks == [], f"credentials found: {leaks}"
