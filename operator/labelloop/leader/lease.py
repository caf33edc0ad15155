"""The Lease API for election: read one Lease, create it, or replace it whole.

A replace carries the resourceVersion the candidate read, so the API server refuses it (409)
when anyone wrote the Lease in between: of two candidates racing to take it, exactly one wins.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .policy import LeaseRecord

API_VERSION = "coordination.k8s.io/v1"
_CONFLICT, _NOT_FOUND = 409, 404


def election_api_client() -> client.ApiClient:
    """A client of the election's own, from the loaded credentials (kubeconfig or in-cluster).

    Its own connections, so that a renewal never queues behind the handlers' requests; and no
    retries inside a request, so that each attempt ends within the timeout the elector gives
    it (the elector retries on its own schedule, within its deadline).
    """
    configuration = client.Configuration.get_default_copy()
    configuration.retries = False
    return client.ApiClient(configuration)


class LeaseStore:
    """One Lease. Each call is bounded by `timeout` seconds; a write that lost a race returns
    None, and any other failure raises."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str) -> None:
        self._api = client.CoordinationV1Api(api_client)
        self.namespace, self.name = namespace, name

    def read(self, timeout: float) -> LeaseRecord | None:
        try:
            lease = self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=timeout
            )
        except ApiException as error:
            if error.status == _NOT_FOUND:
                return None
            raise
        return _record(lease)

    def create(self, spec: dict[str, Any], timeout: float) -> LeaseRecord | None:
        """Create the Lease with `spec`; None when another candidate created it first."""
        body = {"apiVersion": API_VERSION, "kind": "Lease", "metadata": {"name": self.name}}
        try:
            lease = self._api.create_namespaced_lease(
                self.namespace, {**body, "spec": spec}, _request_timeout=timeout
            )
        except ApiException as error:
            if error.status == _CONFLICT:
                return None
            raise
        return _record(lease)

    def replace(self, version: str, spec: dict[str, Any], timeout: float) -> LeaseRecord | None:
        """Replace the Lease's spec, if it is still at `version`; None when it is not (or gone)."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "resourceVersion": version},
            "spec": spec,
        }
        try:
            lease = self._api.replace_namespaced_lease(
                self.name, self.namespace, body, _request_timeout=timeout
            )
        except ApiException as error:
            if error.status in (_CONFLICT, _NOT_FOUND):
                return None
            raise
        return _record(lease)


def describe(error: Exception) -> str:
    """An API error in one line: its status and the API server's message, not the headers."""
    if isinstance(error, ApiException):
        try:
            message = json.loads(error.body or "{}").get("message")
        except ValueError:
            message = None
        return f"{error.status} {error.reason}: {message or error.body}"
    return str(error) or type(error).__name__


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()  # a Lease made by hand may have none
    return LeaseRecord(
        version=str(lease.metadata.resource_version),
        holder=spec.holder_identity or "",
        duration=spec.lease_duration_seconds,
        acquired=spec.acquire_time,
        transitions=spec.lease_transitions or 0,
    )
