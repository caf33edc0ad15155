"""Who wakes whom: the in-memory signals that start a reconcile, and the rules that send them.

Every custom resource has one reconcile loop (`controllers.driver`) that sleeps until it is
woken or its resync is due. It is woken by
- its own changes: spec (generation), labels or annotations (`self_signature`); a status
  change alone, or a change of the operator's own annotations, which are mostly the
  operator's own writes, wake nobody but the dependents;
- its children's changes: a Job, pod, Deployment or Service carries its owner's name under
  the label `labelloop.io/<kind>` (`owners_of`);
- changes of the objects it reads (`dependents`): a FineTuneJob finishing wakes its project's
  AnnotationProject and PrelabelServices, a project's status wakes its PrelabelServices (the
  prelabel accuracy they roll out by) and waiting FineTuneJobs, a PrelabelService's status
  wakes the projects it prelabels;
- the webhook receiver, when Label Studio reports annotations.

A wake only starts a pass, which re-reads everything; a lost wake is made good by the next
resync, so nothing here must be exact, only cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from ..api import ANNOTATION_PROJECT, FINE_TUNE_JOB, KINDS, PRELABEL_SERVICE
from ..metrics import ObjectKey
from ..resources.common import LABEL_PREFIX

OWNER_LABELS = {f"{LABEL_PREFIX}/{kind.singular}": kind.kind for kind in KINDS}
"""The label a child carries its owner's name under, by the owner's kind."""

Objects = Callable[[str], list[Mapping[str, Any]]]
"""The custom resources of a kind in the namespace at hand, by kind name."""


def owners_of(namespace: str, labels: Mapping[str, str]) -> list[ObjectKey]:
    """The custom resources an object's labels name as its owners."""
    return [
        ObjectKey(kind, namespace, str(labels[label]))
        for label, kind in OWNER_LABELS.items()
        if labels.get(label)
    ]


def dependents(kind: str, body: Mapping[str, Any], objects: Objects) -> list[ObjectKey]:
    """The custom resources whose reconcile reads `body` (a custom resource of `kind`)."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    spec = body.get("spec") or {}

    def named(of_kind: str, matches: Callable[[Mapping[str, Any]], bool]) -> Iterable[str]:
        for other in objects(of_kind):
            if matches(other.get("spec") or {}):
                yield str((other.get("metadata") or {}).get("name"))

    found: list[ObjectKey] = []
    if kind == FINE_TUNE_JOB.kind:
        project = _ref(spec, "annotationProjectRef")
        if project:
            found.append(ObjectKey(ANNOTATION_PROJECT.kind, namespace, project))
        services = named(
            PRELABEL_SERVICE.kind,
            lambda s: (
                (project is not None and _ref(s, "annotationProjectRef") == project)
                or _ref(s.get("model") or {}, "fineTuneJobRef") == name
            ),
        )
        found += [ObjectKey(PRELABEL_SERVICE.kind, namespace, s) for s in services]
    elif kind == ANNOTATION_PROJECT.kind:
        for other in (PRELABEL_SERVICE.kind, FINE_TUNE_JOB.kind):
            refer = named(other, lambda s: _ref(s, "annotationProjectRef") == name)
            found += [ObjectKey(other, namespace, n) for n in refer]
    elif kind == PRELABEL_SERVICE.kind:
        projects = named(
            ANNOTATION_PROJECT.kind, lambda s: _ref(s.get("prelabel") or {}, "serviceRef") == name
        )
        found += [ObjectKey(ANNOTATION_PROJECT.kind, namespace, p) for p in projects]
    return found


def _ref(spec: Mapping[str, Any], field: str) -> str | None:
    ref = spec.get(field)
    return str(ref["name"]) if isinstance(ref, Mapping) and ref.get("name") else None


def self_signature(body: Mapping[str, Any]) -> str:
    """What of an object, when it changes, wakes the object itself: its spec, labels and
    annotations, but the operator's own (`labelloop.io/...`, such as a project's id in Label
    Studio), which a pass writes as it goes and which need no second pass."""
    meta = body.get("metadata") or {}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(f"{LABEL_PREFIX}/")
    }
    return _digest([meta.get("generation"), meta.get("labels"), annotations])


def seen_signature(kind: str, body: Mapping[str, Any]) -> str:
    """What of an object, when it changes, wakes its `dependents`: all but a FineTuneJob's live
    progress, which the training pods write while nobody needs to act on it."""
    status = dict(body.get("status") or {})
    if kind == FINE_TUNE_JOB.kind:
        status.pop("progress", None)
    meta = body.get("metadata") or {}
    return _digest([meta.get("labels"), body.get("spec"), status])


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class StopSignal(Protocol):
    """What ends a reconcile loop: kopf's `stopped` for a daemon (set when its object goes or
    stops matching), or an `asyncio.Event`."""

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


class Waker:
    """One object's wake-up signal: set from any thread, waited on by its reconcile loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def set(self) -> None:
        self._loop.call_soon_threadsafe(self._event.set)

    def clear(self) -> None:
        """Forget wakes so far; the loop calls this as a pass begins, so that a wake during
        the pass runs another."""
        self._event.clear()

    async def wait(self, timeout: float, stopped: StopSignal) -> bool:
        """Sleep until woken, stopped or `timeout` seconds have passed; True when woken."""
        woken = asyncio.ensure_future(self._event.wait())
        halted = asyncio.ensure_future(stopped.wait())
        try:
            await asyncio.wait(
                (woken, halted), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            woken.cancel()
            halted.cancel()
        return self._event.is_set()


class Wakeups:
    """The wakers of the objects being reconciled, and what was last seen of each object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakers: dict[ObjectKey, Waker] = {}
        self._seen: dict[ObjectKey, tuple[str, str]] = {}

    def register(self, key: ObjectKey) -> Waker:
        waker = Waker(asyncio.get_running_loop())
        with self._lock:
            self._wakers[key] = waker
        return waker

    def unregister(self, key: ObjectKey, waker: Waker) -> None:
        with self._lock:
            if self._wakers.get(key) is waker:  # not a successor of the same name
                del self._wakers[key]

    def wake(self, key: ObjectKey) -> bool:
        """Wake `key`'s reconcile loop, from any thread; False when it has none."""
        with self._lock:
            waker = self._wakers.get(key)
        if waker is None:
            return False
        waker.set()
        return True

    def observe(self, kind: str, body: Mapping[str, Any]) -> tuple[bool, bool]:
        """Record a watch event of a custom resource: (its own fields changed, what others
        read of it changed) since the last event."""
        meta = body.get("metadata") or {}
        key = ObjectKey(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        now = (self_signature(body), seen_signature(kind, body))
        with self._lock:
            before = self._seen.get(key)
            self._seen[key] = now
        if before is None:
            return True, True
        return before[0] != now[0], before[1] != now[1]

    def forget(self, kind: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = ObjectKey(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            self._seen.pop(key, None)
