"""The operator's only door to the Kubernetes API: apply, create, read, list, delete.

Children are written with server-side apply under one field manager, so a reconcile that
runs twice, or after a restart, converges on the same objects instead of making new ones.
Everything goes through the dynamic client and plain dicts, the same shape the builders in
`resources/` return.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

FIELD_MANAGER = "labelloop"


def load_credentials() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    """A thin, synchronous wrapper; kopf runs sync handlers in its thread pool."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Any] = {}

    def _resource(self, api_version: str, kind: str) -> Any:
        # Discovery is slow; each kind is looked up once per process.
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: create or converge, owning exactly the fields we state."""
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        result = resource.server_side_apply(
            body=manifest,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return dict(result.to_dict())

    def create_if_absent(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create once; an existing object is left alone and returned.

        For objects that others change after creation (a Job that Kueue unsuspends) or whose
        spec is immutable, re-applying would fight them.
        """
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        try:
            return dict(resource.create(body=manifest, namespace=meta.get("namespace")).to_dict())
        except ConflictError:
            existing = self.get(
                manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace")
            )
            if existing is None:  # deleted in between; the next reconcile creates it
                raise
            return existing

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        try:
            obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except NotFoundError:
            return None
        return dict(obj.to_dict())

    def list(
        self, api_version: str, kind: str, namespace: str | None, labels: dict[str, str]
    ) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        result = self._resource(api_version, kind).get(namespace=namespace, label_selector=selector)
        return [dict(item.to_dict()) for item in result.items]

    def patch(
        self, api_version: str, kind: str, name: str, namespace: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch, e.g. to scale a Deployment."""
        resource = self._resource(api_version, kind)
        result = resource.patch(
            body=body,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
        )
        return dict(result.to_dict())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        with contextlib.suppress(NotFoundError):
            self._resource(api_version, kind).delete(
                name=name, namespace=namespace, propagation_policy="Background"
            )


__all__ = ["ApiException", "Kube", "load_credentials"]
