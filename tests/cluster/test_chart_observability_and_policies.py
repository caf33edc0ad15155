"""The chart's monitoring and network pieces, rendered by Helm: the dashboard ConfigMap, the
ServiceMonitor and PodMonitor, the operator's NetworkPolicy and `--network-policies`, the
webhook receiver's TLS."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from fixtures.operator import CHART, HELM
from labelloop.resources.network import PolicyPeers

pytestmark = pytest.mark.cluster

DASHBOARD = CHART / "dashboards" / "labelloop.json"


def render(*values: str, check: bool = True) -> list[dict[str, Any]]:
    sets = [arg for v in values for arg in ("--set", v)]
    out = subprocess.run(
        [str(HELM), "template", "ll", str(CHART), "--namespace", "ops", *sets],
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def operator_args(docs: list[dict[str, Any]]) -> list[str]:
    (deployment,) = of_kind(docs, "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_monitoring_is_off_until_asked_for() -> None:
    docs = render()
    assert not of_kind(docs, "ServiceMonitor") and not of_kind(docs, "PodMonitor")
    assert not [
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboard")
    ]


def test_the_dashboard_configmap_carries_the_dashboard_and_the_sidecars_label() -> None:
    docs = render("grafana.dashboard.enabled=true")
    (config_map,) = [
        d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "ll-labelloop-dashboard"
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["labelloop.json"]) == json.loads(DASHBOARD.read_text())


def test_monitors_scrape_the_operator_service_and_every_prelabel_pod() -> None:
    docs = render(
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
        "metrics.podMonitor.enabled=true",
    )
    (service_monitor,) = of_kind(docs, "ServiceMonitor")
    assert service_monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = service_monitor["spec"]["selector"]["matchLabels"]
    port = service_monitor["spec"]["endpoints"][0]["port"]
    scraped = [
        s
        for s in of_kind(docs, "Service")
        if selector.items() <= s["metadata"]["labels"].items()
        and port in [p["name"] for p in s["spec"]["ports"]]
    ]
    assert len(scraped) == 1, "one Service of the operator has the metrics port"
    (pod_monitor,) = of_kind(docs, "PodMonitor")
    assert pod_monitor["spec"]["namespaceSelector"] == {"any": True}
    assert (
        pod_monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        == "labelloop-prelabel"
    )
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http"


def test_by_default_only_label_studio_reaches_the_webhook_receiver() -> None:
    docs = render()
    (policy,) = of_kind(docs, "NetworkPolicy")
    (deployment,) = of_kind(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    webhook, metrics, health = policy["spec"]["ingress"]
    assert webhook["ports"] == [{"protocol": "TCP", "port": "webhook"}]
    (label_studio,) = webhook["from"]
    assert label_studio["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "label-studio"
    # Metrics and the liveness endpoint: no secrets behind them, open unless narrowed.
    assert "from" not in metrics and "from" not in health
    container_ports = {
        p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {"webhook", "metrics", "health"} <= container_ports


def test_the_operator_is_told_its_own_pods_and_the_scrapers() -> None:
    docs = render(
        "networkPolicy.metricsFrom[0].namespace=monitoring",
        "networkPolicy.metricsFrom[0].podLabels.app=prometheus",
    )
    (flag,) = [a for a in operator_args(docs) if a.startswith("--network-policies=")]
    peers = PolicyPeers.model_validate_json(flag.removeprefix("--network-policies="))
    (deployment,) = of_kind(docs, "Deployment")
    assert peers.operator.namespace == "ops"
    assert (
        peers.operator.pod_labels.items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert [(s.namespace, s.pod_labels) for s in peers.scrapers] == [
        ("monitoring", {"app": "prometheus"})
    ]
    (policy,) = of_kind(docs, "NetworkPolicy")
    (scraper,) = policy["spec"]["ingress"][1]["from"]
    assert scraper["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    (role,) = [d for d in of_kind(docs, "ClusterRole") if d["metadata"]["name"] == "ll-labelloop"]
    assert {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["get", "create", "patch", "delete"],
    } in role["rules"]


def test_policies_can_be_turned_off() -> None:
    docs = render("networkPolicy.enabled=false")
    assert not of_kind(docs, "NetworkPolicy")
    assert not [a for a in operator_args(docs) if a.startswith("--network-policies")]


def test_a_tls_secret_makes_the_receiver_https() -> None:
    docs = render("webhook.tlsSecret=webhook-tls", "webhook.replayWindowSeconds=300")
    args = operator_args(docs)
    assert "--webhook-url=https://ll-labelloop.ops.svc:8081" in args
    assert "--webhook-tls-cert=/etc/labelloop/webhook-tls/tls.crt" in args
    assert "--webhook-tls-key=/etc/labelloop/webhook-tls/tls.key" in args
    assert "--webhook-replay-window=300" in args
    (deployment,) = of_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "webhook-tls", "secret": {"secretName": "webhook-tls"}} in pod["volumes"]
    assert "--webhook-url=http://ll-labelloop.ops.svc:8081" in operator_args(render())


@pytest.mark.parametrize(
    "bad",
    [
        "networkPolicy.metricsFrom[0].namespace=monitoring",  # no podLabels
        "webhook.replayWindowSeconds=0",
        "metrics.serviceMonitor.interval=often",
        "webhook.tlsSecret=Not_A_Name",
    ],
)
def test_bad_values_are_refused(bad: str) -> None:
    result = subprocess.run(
        [str(HELM), "template", "ll", str(CHART), "--set", bad],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "values don't meet the specifications" in result.stderr
