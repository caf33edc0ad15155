"""The operator's Service follows the leader: an EndpointSlice that names the leading pod.

Label Studio posts its webhooks to the operator's Service, and only the leader runs the
receiver (a standby acts on nothing, and the webhook secrets are the leader's). So with leader
election the Service has no selector: the replica that takes the Lease writes the Service's
EndpointSlice with its own pod address, and kube-proxy sends the webhooks there. A standby
that takes over rewrites it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .lease import describe

logger = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
# Not the EndpointSlice controller's own value, which would let that controller delete it.
MANAGED_BY = "leader.labelloop.io"
_NOT_FOUND = 404


def endpoint_slice(
    namespace: str, service: str, pod_name: str, pod_ip: str, ports: dict[str, int]
) -> dict[str, Any]:
    """The EndpointSlice that routes `service` to one pod. `ports` maps the Service's port
    names to the pod's port numbers."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: MANAGED_BY},
        },
        "addressType": "IPv6" if ":" in pod_ip else "IPv4",
        "endpoints": [
            {
                "addresses": [pod_ip],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": pod_name, "namespace": namespace},
            }
        ],
        "ports": [
            {"name": name, "port": port, "protocol": "TCP"} for name, port in sorted(ports.items())
        ],
    }


def publish(
    api_client: client.ApiClient, manifest: dict[str, Any], attempts: int = 3, pause: float = 1.0
) -> bool:
    """Create or replace the EndpointSlice `manifest`; False (logged) when every attempt
    failed: webhooks then miss the leader until the next leader writes it, and objects are
    still reconciled when they change and at every resync."""
    api = client.DiscoveryV1Api(api_client)
    meta = manifest["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    for attempt in range(1, attempts + 1):
        try:
            try:
                current = api.read_namespaced_endpoint_slice(name, namespace, _request_timeout=5)
            except ApiException as error:
                if error.status != _NOT_FOUND:
                    raise
                api.create_namespaced_endpoint_slice(namespace, manifest, _request_timeout=5)
            else:
                body = {
                    **manifest,
                    "metadata": {**meta, "resourceVersion": current.metadata.resource_version},
                }
                api.replace_namespaced_endpoint_slice(name, namespace, body, _request_timeout=5)
        except Exception as error:  # whatever failed, the next attempt reads afresh
            logger.warning(
                "Service %s/%s not routed to this replica (attempt %d of %d): %s",
                namespace,
                name,
                attempt,
                attempts,
                describe(error),
            )
            if attempt < attempts:
                time.sleep(pause)
            continue
        logger.info("Service %s/%s routed to this replica", namespace, name)
        return True
    return False
