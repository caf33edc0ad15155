"""The operator's only door to the Kubernetes API: apply, create, read, list, delete.

Children are written with server-side apply under one field manager, so a reconcile that
runs twice, or after a restart, converges on the same objects instead of making new ones;
and they are written only when they differ from what exists (`resources.compare`), since an
apply that changes nothing is still a write request. Reads of the kinds the operator watches
come from its watch cache (`controllers.cache`), so a reconcile that finds everything in
order sends no request at all; what it writes goes into that cache as the API server answered
(`WatchCache.put`). Everything goes through the dynamic client and plain dicts, the same shape
the builders in `resources/` return.
"""

from __future__ import annotations

import contextlib
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from ..resources.compare import fingerprinted, needs_update
from .cache import WatchCache

FIELD_MANAGER = "labelloop"
CONNECTIONS = 32


def load_credentials() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # A kept connection for each of the reconciles that may run at once (kopf's threads),
    # not urllib3's ten: a discarded connection is a new TLS handshake for the next request.
    configuration.connection_pool_maxsize = CONNECTIONS
    return client.ApiClient(configuration)


class Kube:
    """A thin, synchronous wrapper; kopf runs sync handlers in its thread pool."""

    def __init__(self, api_client: client.ApiClient, cache: WatchCache | None = None) -> None:
        self._dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Any] = {}
        self.cache = cache or WatchCache()

    def _resource(self, api_version: str, kind: str) -> Any:
        # Discovery is slow; each kind is looked up once per process.
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Make the object as `manifest` states it: created when missing, applied when it
        differs on what the manifest states (`resources.compare`), else left alone."""
        desired = fingerprinted(manifest)
        meta = desired["metadata"]
        existing = self.get(
            desired["apiVersion"], desired["kind"], meta["name"], meta.get("namespace")
        )
        if existing is not None and not needs_update(desired, existing):
            return existing
        return self._server_side_apply(desired)

    def _server_side_apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
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
        return self._written(result)

    def create_if_absent(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create once; an existing object is left alone and returned.

        For objects that others change after creation (a Job that Kueue unsuspends) or whose
        spec is immutable, re-applying would fight them. Looked up first, so that an object
        that exists costs a read (none, for a watched kind), not a refused create.
        """
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        found = self.get(
            manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace")
        )
        if found is not None:
            return found
        try:
            return self._written(resource.create(body=manifest, namespace=meta.get("namespace")))
        except ConflictError:
            # Made since the watch cache last heard of it: ask the API server.
            existing = self._read(
                manifest["apiVersion"], manifest["kind"], meta["name"], meta.get("namespace")
            )
            if existing is None:  # deleted in between; the next reconcile creates it
                raise
            return existing

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        """The object, from the watch cache for a watched kind (read it, never change it)."""
        if self.cache.covers(api_version, kind):
            return self.cache.get(api_version, kind, name, namespace)
        return self._read(api_version, kind, name, namespace)

    def _read(
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
        """Objects with all `labels`, from the watch cache for a watched kind."""
        if self.cache.covers(api_version, kind):
            return self.cache.list(api_version, kind, namespace, labels)
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
        return self._written(result)

    def patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch of the status subresource; returns the object as stored."""
        resource = self._resource(api_version, kind)
        result = resource.status.patch(
            body={"status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
        )
        return self._written(result)

    def _written(self, result: Any) -> dict[str, Any]:
        """A write's answer, also kept in the watch cache: the newest view of the object."""
        written = dict(result.to_dict())
        self.cache.put(written)
        return written

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        """Delete the object if it exists (looked up first: a delete of nothing is a write)."""
        if self.get(api_version, kind, name, namespace) is None:
            return
        with contextlib.suppress(NotFoundError):
            self._resource(api_version, kind).delete(
                name=name, namespace=namespace, propagation_policy="Background"
            )


__all__ = ["ApiException", "Kube", "load_credentials"]
