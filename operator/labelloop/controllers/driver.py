"""Each custom resource's reconcile loop: a pass when woken, then sleep until woken again.

`drive(kind, handler)` gives every object of `kind` a kopf daemon (one asyncio task; kopf
starts it when the object is first seen, including at operator start, and stops it when the
object goes or, with `when`, stops matching). The loop runs a pass in kopf's thread pool,
at most `PASSES_PER_KIND` of one kind at once, then sleeps until
- it is woken (`controllers.wakeups`: its own or its children's changes, objects it reads,
  a webhook); wakes during a pass run one more pass, however many they were;
- the pass asked to look again at a set time (`Reconcile.recheck_in`: a deadline that will
  pass, a rollout step, Label Studio that did not answer); or
- the resync is due (`OperatorConfig.resync_seconds`, spread by a tenth either way so that
  objects started together do not resync together): a safety net for lost events.

Writes happen only when something changed: a pass writes its status only when merging it
would change what is stored (`merge_patch.changes`), and children only when they differ
(`Kube.apply`), so an idle object costs no write at all.

A pass that raises backs off exponentially (`retry_delay`, up to `MAX_RETRY_SECONDS`) and is
logged once when it starts failing, again only when the failure changes, and once when it
recovers, in one line without a traceback for API and Label Studio errors. An object in a
namespace being deleted is left alone until the resync: its children cannot be created, and
the garbage collector takes it soon.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import json
import logging
import random
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from ..api import API_VERSION, GROUP, VERSION, Kind
from ..labelstudio.errors import LabelStudioError
from ..metrics import ObjectKey
from .cache import WatchCache, newer
from .context import OperatorContext
from .merge_patch import changes
from .wakeups import StopSignal

logger = logging.getLogger(__name__)

# Passes of one kind in kopf's threads at once (of 16): projects waiting for a slow Label
# Studio never hold every thread while FineTuneJobs and PrelabelServices wait behind them.
PASSES_PER_KIND = 8
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
RESYNC_SPREAD = 0.1
# How long kopf lets a loop it asked to stop end on its own: it does at its next wait, once
# the pass it may be in has ended (a finished FineTuneJob's loop is stopped as its last pass
# writes the status), which takes seconds on a busy machine. Without it, kopf cancels the loop
# at once and warns for every finished FineTuneJob.
GRACEFUL_STOP_SECONDS = 10.0
# How long kopf then waits for a cancelled loop: its thread finishes a pass on its own anyway.
CANCELLATION_SECONDS = 1.0

PassHandler = Callable[..., float | None]
"""A `handler.reconciler` pass: kopf-style keyword arguments in, seconds until the next
look (or None: none asked) out."""


def retry_delay(failures: int) -> float:
    """Seconds before retrying after `failures` failed passes in a row: 1, 2, 4, ... 300."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * float(2 ** max(failures - 1, 0)))


def resync_delay(resync_seconds: float, draw: Callable[[float, float], float]) -> float:
    """The resync period, spread by `RESYNC_SPREAD` either way (`draw` is random.uniform)."""
    return resync_seconds * draw(1 - RESYNC_SPREAD, 1 + RESYNC_SPREAD)


def namespace_terminating(error: BaseException) -> bool:
    """The API server refused a create because the namespace is being deleted."""
    return (
        isinstance(error, ApiException)
        and error.status == 403
        and "NamespaceTerminating" in str(error.body or "")
    )


def describe(error: BaseException) -> str:
    """One line saying what went wrong: the API server's message, not its headers."""
    if isinstance(error, ApiException):
        message = ""
        try:
            message = str(json.loads(error.body or "{}").get("message") or "")
        except (ValueError, AttributeError):
            message = str(error.body or "")[:300]
        return f"API {error.status} {error.reason}: {message}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


def expected(error: BaseException) -> bool:
    """Failures of the outside world, told in one line; anything else is a bug worth its
    traceback (once)."""
    return isinstance(error, ApiException | LabelStudioError | OSError | TimeoutError)


class Failures:
    """One object's run of failed passes: how long to back off, and what to log when."""

    def __init__(self, who: str) -> None:
        self._who = who
        self.count = 0
        self._last: str | None = None

    def failed(self, error: BaseException, resync: float) -> float:
        """Seconds to wait after `error`; logs when the failure is new."""
        self.count += 1
        summary = describe(error)
        if namespace_terminating(error):
            if summary != self._last:
                logger.info("%s: its namespace is being deleted; left alone", self._who)
            self._last = summary
            return resync
        delay = retry_delay(self.count)
        if summary != self._last:
            logger.warning(
                "%s: reconcile failed: %s (retrying in %gs, then less often)",
                self._who,
                summary,
                delay,
                exc_info=None if expected(error) else error,
            )
        self._last = summary
        return delay

    def succeeded(self) -> None:
        if self._last is not None:
            logger.info("%s: reconcile recovered after %d failed pass(es)", self._who, self.count)
        self.count, self._last = 0, None


def run_pass(kind: Kind, handler: PassHandler, body: kopf.Body, memo: kopf.Memo) -> float | None:
    """One pass over `body`; its status is written only when it changes anything. Returns
    the seconds until the pass wants another look (None: when woken or at the resync)."""
    patch = kopf.Patch()
    recheck = handler(body=body, meta=body.meta, status=body.status, patch=patch, memo=memo)
    status = dict(patch.get("status") or {})
    if status and changes(dict(body.status), status):
        context: OperatorContext = memo["context"]
        name, namespace = body.meta["name"], body.meta["namespace"]
        context.kube.patch_status(API_VERSION, kind.kind, name, namespace, status)
    return recheck


def snapshot(kind: Kind, live: kopf.Body, cache: WatchCache) -> kopf.Body:
    """A copy of the object for one pass: kopf's live view, or the watch cache's when that is
    newer (it holds the operator's own last writes before the watch brings them back, so a
    pass never acts on a status or annotation older than one it wrote)."""
    meta = live.meta
    cached = cache.get(API_VERSION, kind.kind, meta["name"], meta["namespace"])
    raw: dict[str, Any] = dict(live)
    if cached is not None and newer(
        cached["metadata"].get("resourceVersion"), meta.get("resourceVersion")
    ):
        raw = cached
    return kopf.Body(cast(kopf.RawBody, copy.deepcopy(raw)))


async def reconcile_loop(
    kind: Kind,
    handler: PassHandler,
    body: kopf.Body,
    memo: kopf.Memo,
    executor: Executor | None,
    *,
    stopped: StopSignal,
) -> None:
    """The loop of one object (see the module docstring); runs until `stopped` (or kopf
    cancels it). Ending on `stopped` spares kopf a cancellation, and its warning, for every
    finished FineTuneJob."""
    context: OperatorContext = memo["context"]
    namespace, name = body.meta["namespace"], body.meta["name"]
    key = ObjectKey(kind.kind, namespace, name)
    failures = Failures(f"{kind.kind} {namespace}/{name}")
    waker = context.wakeups.register(key)
    loop = asyncio.get_running_loop()
    resync = float(context.config.resync_seconds)
    slots = context.pass_slots.setdefault(kind.kind, asyncio.Semaphore(PASSES_PER_KIND))
    try:
        while not stopped.is_set():
            waker.clear()
            current = snapshot(kind, body, context.kube.cache)
            if current.meta.get("deletionTimestamp"):
                await waker.wait(resync, stopped)  # kopf stops this loop soon
                continue
            one = functools.partial(run_pass, kind, handler, current, memo)
            if not await slot_or_stop(slots, stopped):
                break
            try:
                recheck = await loop.run_in_executor(executor, contextvars.copy_context().run, one)
            except Exception as error:  # every failure backs off the same way
                delay = failures.failed(error, resync)
            else:
                failures.succeeded()
                delay = resync_delay(resync, random.uniform)
                if recheck is not None:
                    delay = min(delay, max(recheck, 0.0))
            finally:
                slots.release()
            await waker.wait(delay, stopped)
    finally:
        context.wakeups.unregister(key, waker)


async def slot_or_stop(slots: asyncio.Semaphore, stopped: StopSignal) -> bool:
    """Take one of the kind's pass slots, unless the loop is stopped first (False: no slot
    held). Hundreds of loops can queue for a slot; a stopped one leaves the queue at once
    instead of waiting its turn until kopf gives up on it."""
    acquired = asyncio.ensure_future(slots.acquire())
    halted = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait((acquired, halted), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled by kopf meanwhile: hold nothing
        halted.cancel()
        if acquired.done() and not acquired.cancelled():
            slots.release()
        else:
            acquired.cancel()
        raise
    halted.cancel()
    if not acquired.done():
        acquired.cancel()  # the semaphore hands a slot it gives meanwhile to the next
        return False
    if stopped.is_set():
        slots.release()
        return False
    return True


def drive(kind: Kind, handler: PassHandler, *, when: Callable[..., bool] | None = None) -> None:
    """Give every object of `kind` (matching `when`, a kopf filter, if given) its reconcile
    loop."""

    async def loop(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
        context: OperatorContext = memo["context"]
        await reconcile_loop(kind, handler, body, memo, context.executor, stopped=stopped)

    kopf.daemon(
        GROUP,
        VERSION,
        kind.plural,
        id=f"reconcile-{kind.plural}",
        when=when,
        cancellation_backoff=GRACEFUL_STOP_SECONDS,
        cancellation_timeout=CANCELLATION_SECONDS,
    )(loop)
