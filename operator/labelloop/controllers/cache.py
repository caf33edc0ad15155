"""What the operator's watches have seen, read by reconciles instead of the API server.

The operator watches its own three kinds and the children it follows (`WATCHED`) anyway, to
wake their owners (`controllers.watches`); keeping the latest body of each lets a reconcile
read a Job, its pods or a project's FineTuneJobs without a request, as controller-runtime's
cached client does. kopf fills the cache from its indexes, which it completes (the first
listing of every watched kind) before any handler runs, so a reconcile never mistakes an
unlisted child for a missing one.

A cached body may lag the API server by a watch event. The operator's own writes go into the
cache as the API server answered them (`Kube`), so the next pass sees what it wrote even
before the watch brings it: a project whose status write is not back yet is not created in
Label Studio a second time. A body older than the one kept (by resource version) is ignored,
and so is one of an object deleted since (a tombstone remembers the deletion). What else may
lag is harmless: the API server refuses a create of an object that exists
(`Kube.create_if_absent` then reads it), and a reconcile that acted on a stale view is woken
again by the event that follows.

Bodies are kept without what no reconcile reads (`managedFields`, the pod template of a Job,
of a pod all but its volumes and the state of its containers), and children packed as JSON
text, unpacked when read, so that thousands of them cost little memory: a child's body is
about a tenth the size as text that it is as Python objects. The operator's own kinds stay
unpacked, as kopf holds them anyway (their parts are shared) and the wake-up rules read them
on every change. A body handed out for one of those is shared: read it, never change it.

Only children the operator owns are watched (`controllers.watches`): read others of those
kinds from the API server, not through the cache.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api import API_VERSION, KINDS

Body = dict[str, Any]
MAX_TOMBSTONES = 10_000


@dataclass(frozen=True)
class WatchedKind:
    """A kind the operator watches: how the API names it and kopf's plural, and whether
    the cache keeps its bodies packed as text."""

    api_version: str
    kind: str
    plural: str
    packed: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


JOBS = WatchedKind("batch/v1", "Job", "jobs")
PODS = WatchedKind("v1", "Pod", "pods")
DEPLOYMENTS = WatchedKind("apps/v1", "Deployment", "deployments")
SERVICES = WatchedKind("v1", "Service", "services")
CHILDREN = (JOBS, PODS, DEPLOYMENTS, SERVICES)
"""The children whose changes wake their owners and whose bodies reconciles read."""
CUSTOM = tuple(WatchedKind(API_VERSION, kind.kind, kind.plural, packed=False) for kind in KINDS)
"""The operator's own kinds."""
WATCHED = CUSTOM + CHILDREN


def trimmed(kind: str, body: Mapping[str, Any]) -> Body:
    """`body` without what no reconcile reads (see the module docstring)."""
    out = dict(body)
    metadata = dict(out.get("metadata") or {})
    metadata.pop("managedFields", None)
    out["metadata"] = metadata
    spec = out.get("spec") or {}
    if kind == PODS.kind:
        out["spec"] = {"volumes": spec.get("volumes") or []}
        status = out.get("status") or {}
        out["status"] = {k: status[k] for k in POD_STATUS if k in status}
    elif kind == JOBS.kind:
        out["spec"] = {k: v for k, v in spec.items() if k != "template"}
    return out


# What a FineTuneJob's pass reads of its pods' status.
POD_STATUS = ("phase", "conditions", "containerStatuses")


@dataclass(frozen=True)
class _Entry:
    """One cached object: its resource version and labels, and its body or its body's text."""

    version: str
    labels: Mapping[str, str]
    body: Body | None = None
    text: str | None = None

    @classmethod
    def of(cls, watched: WatchedKind, body: Mapping[str, Any]) -> _Entry:
        kept = trimmed(watched.kind, body)
        meta = kept["metadata"]
        version, labels = str(meta.get("resourceVersion") or ""), dict(meta.get("labels") or {})
        if watched.packed:
            return cls(version, labels, text=json.dumps(kept, separators=(",", ":")))
        return cls(version, labels, body=kept)

    def unpacked(self) -> Body:
        if self.body is not None:
            return self.body
        assert self.text is not None
        body: Body = json.loads(self.text)
        return body


class WatchCache:
    """The latest body of every watched object, by kind, namespace and name; thread-safe."""

    def __init__(self, kinds: Iterable[WatchedKind] = ()) -> None:
        """A cache of `kinds`, the kinds the operator's watches keep here; `get` and `list`
        answer for those only (`covers`)."""
        self._lock = threading.Lock()
        self._watched = {(k.api_version, k.kind): k for k in kinds}
        self._kinds: dict[tuple[str, str], dict[str, dict[str, _Entry]]] = {
            key: {} for key in self._watched
        }
        # The resource version at which an object was deleted, oldest first.
        self._tombstones: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()

    def covers(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._kinds

    def put(self, body: Mapping[str, Any]) -> None:
        """Keep `body` (from a watch event or a write's answer) unless a newer one is kept."""
        api_version, kind = str(body.get("apiVersion")), str(body.get("kind"))
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
        version = str(meta.get("resourceVersion") or "")
        watched = self._watched.get((api_version, kind))
        if watched is None:  # not a cached kind
            return
        entry = _Entry.of(watched, body)  # outside the lock: packing takes a while
        with self._lock:
            namespaces = self._kinds[(api_version, kind)]
            deleted = self._tombstones.get((api_version, kind, namespace, name))
            if deleted is not None and not newer(version, deleted):
                return
            objects = namespaces.setdefault(namespace, {})
            kept = objects.get(name)
            if kept is not None and newer(kept.version, version):
                return
            objects[name] = entry

    def remove(self, body: Mapping[str, Any]) -> None:
        """Forget a deleted object (`body` is its last state, as the watch tells it)."""
        api_version, kind = str(body.get("apiVersion")), str(body.get("kind"))
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
        with self._lock:
            objects = self._kinds.get((api_version, kind), {}).get(namespace, {})
            objects.pop(name, None)
            if not objects:
                self._kinds.get((api_version, kind), {}).pop(namespace, None)
            key = (api_version, kind, namespace, name)
            self._tombstones.pop(key, None)
            self._tombstones[key] = str(meta.get("resourceVersion") or "")
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> Body | None:
        with self._lock:
            entry = self._kinds.get((api_version, kind), {}).get(namespace or "", {}).get(name)
        return None if entry is None else entry.unpacked()

    def list(
        self, api_version: str, kind: str, namespace: str | None, labels: Mapping[str, str]
    ) -> list[Body]:
        """Objects of `kind` in `namespace` (every namespace for None) with all `labels`."""
        with self._lock:
            namespaces = self._kinds.get((api_version, kind), {})
            chosen = namespaces.values() if namespace is None else [namespaces.get(namespace, {})]
            candidates = [entry for objects in chosen for entry in objects.values()]
        return [
            entry.unpacked()
            for entry in candidates
            if all(entry.labels.get(k) == v for k, v in labels.items())
        ]


def newer(version: object, than: object) -> bool:
    """Whether resource version `version` is later than `than`. The API server's are etcd
    revisions, numbers that only grow; anything else is taken as not newer, so that a body
    with an unreadable version never hides the one kept."""
    try:
        return int(str(version)) > int(str(than))
    except ValueError:
        return False
