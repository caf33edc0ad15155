"""The watches that feed the watch cache and wake reconcile loops (kopf handlers).

For each kind in `cache.WATCHED`, two handlers, both `async` so that they run on kopf's event
loop without a thread hop:
- an index, which kopf fills from its first listing before any handler runs, puts every body
  into the watch cache (`controllers.cache`); the index itself keeps nothing. It runs first
  on every event, and drops the body's `managedFields` from kopf's own copy: kopf keeps the
  latest body of every custom resource (for its daemons), managedFields are half of it, and
  nothing here reads them;
- an event handler that takes deleted objects out of the cache and wakes whoever the change
  concerns (`controllers.wakeups`): a child's owners; a custom resource itself when its spec,
  labels or annotations changed, and the objects that read it when what they read changed.

Children are watched only when they carry an owner label (`wakeups.OWNER_LABELS`), pods only
when a FineTuneJob owns them: no other pod is read, and pods are many.

Label Studio is not watched but polled (`controllers.label_studio_poll`), by a task started
and stopped with the operator here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import kopf

from ..api import API_VERSION, FINE_TUNE_JOB
from ..metrics import ObjectKey
from ..resources.common import LABEL_PREFIX
from .cache import CHILDREN, CUSTOM, PODS, WatchedKind
from .wakeups import OWNER_LABELS, dependents, owners_of

if TYPE_CHECKING:
    from .context import OperatorContext

logger = logging.getLogger(__name__)
_POLL_TASK = "label_studio_poll_task"
FINE_TUNE_JOB_LABEL = f"{LABEL_PREFIX}/{FINE_TUNE_JOB.singular}"


def _keep(context: OperatorContext, body: kopf.Body) -> None:
    """Put `body` into the watch cache, after dropping its managedFields from kopf's copy."""
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    context.kube.cache.put(body)


def _owned(labels: Mapping[str, str], **_: Any) -> bool:
    return any(label in labels for label in OWNER_LABELS)


def _where(body: Mapping[str, Any]) -> tuple[str, str, Mapping[str, str]]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or ""), meta.get("labels") or {}


def _watch_child(watched: WatchedKind) -> None:
    where = (watched.group, watched.version, watched.plural)
    # A filter kopf can apply before calling anything: pods only of FineTuneJobs.
    labels = {FINE_TUNE_JOB_LABEL: kopf.PRESENT} if watched == PODS else None
    when = None if watched == PODS else _owned

    async def cache(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        _keep(memo["context"], body)

    async def wake(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext = memo["context"]
        if type == "DELETED":
            context.kube.cache.remove(body)
        namespace, _name, labels = _where(body)
        for owner in owners_of(namespace, labels):
            context.wakeups.wake(owner)

    kopf.index(*where, id=f"cache-{watched.plural}", labels=labels, when=when)(cache)
    kopf.on.event(*where, id=f"wake-{watched.plural}", labels=labels, when=when)(wake)


def _watch_custom(watched: WatchedKind) -> None:
    where = (watched.group, watched.version, watched.plural)

    async def cache(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        _keep(memo["context"], body)

    async def wake(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext = memo["context"]
        namespace, name, labels = _where(body)
        key = ObjectKey(watched.kind, namespace, name)
        if type == "DELETED":
            context.kube.cache.remove(body)
            context.wakeups.forget(watched.kind, body)
            context.label_studio_poll.forget(key)
            itself, seen = False, True
        else:
            itself, seen = context.wakeups.observe(watched.kind, body)
        if itself:
            context.wakeups.wake(key)
        if seen:

            def objects(kind: str) -> list[Mapping[str, Any]]:
                return list(context.kube.cache.list(API_VERSION, kind, namespace, {}))

            for other in [*owners_of(namespace, labels), *dependents(watched.kind, body, objects)]:
                context.wakeups.wake(other)

    kopf.index(*where, id=f"cache-{watched.plural}")(cache)
    kopf.on.event(*where, id=f"wake-{watched.plural}")(wake)


for _child in CHILDREN:
    _watch_child(_child)
for _custom in CUSTOM:
    _watch_custom(_custom)


@kopf.on.startup()
async def start_polling(memo: kopf.Memo, **_: Any) -> None:
    context: OperatorContext = memo["context"]

    async def poll_forever() -> None:
        while True:
            await asyncio.sleep(context.config.label_studio_poll_seconds)
            try:
                woken = await asyncio.to_thread(context.label_studio_poll.poll)
            except Exception:  # a bug here must not end polling for good
                logger.exception("polling Label Studio failed")
                continue
            for key in woken:
                context.wakeups.wake(key)

    memo[_POLL_TASK] = asyncio.create_task(poll_forever())


@kopf.on.cleanup()
async def stop_polling(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get(_POLL_TASK)
    if task is not None:
        task.cancel()
