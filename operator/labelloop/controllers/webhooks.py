"""The operator's webhook receiver: Label Studio events wake a project's reconcile early.

Label Studio posts each event once, inside the request that caused it, and never again, so
nothing here counts or trusts payloads. A request only wakes its AnnotationProject's reconcile
loop, in memory (`controllers.wakeups`: no write to the API server), and that pass re-reads
everything from Label Studio. A lost webhook therefore costs at most a poll interval of delay
(`controllers.label_studio_poll`), a duplicated or forged one at most a reconcile.

What a request must show (`steps.webhook` registers each hook with its header):
- the project's secret header, an HMAC of the project and the current replay window under a
  key the operator draws at start and keeps in memory only, compared in constant time:
  none gets 401, a wrong or expired one 403. A header for one project is useless for another,
  a captured one is refused two windows later, and after a restart each reconcile
  re-registers its webhook with the new key before it reads the project (the old headers are
  refused until then, and what they announced is in that read);
- a body not seen before from this project while its secret is valid: Label Studio never
  sends the same delivery twice, so a repeat is a replay (409). The memory is bounded
  (`MAX_REMEMBERED` deliveries): a flood of distinct deliveries can push out an old one, which
  could then be replayed once until its secret expires, at the cost of one reconcile.

The receiver speaks HTTPS when given a certificate and key (`--webhook-tls-cert`,
`--webhook-tls-key`; the chart mounts them from a Secret). Every answer is JSON naming what
was wrong; a body is never parsed, only hashed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import kopf
from aiohttp import http_exceptions, web

from ..api import ANNOTATION_PROJECT
from ..metrics import ObjectKey
from ..steps.webhook import SECRET_HEADER, HookSecrets, hook_path
from .context import OperatorContext

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_REMEMBERED = 10_000
_RUNNER = "webhook_runner"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
logger = logging.getLogger(__name__)

Wake = Callable[[str, str], None]
"""Wakes the AnnotationProject (namespace, name); raises when it cannot (no such project)."""


class RecentDeliveries:
    """Digests of the deliveries seen while their secrets are valid, oldest first, bounded."""

    def __init__(self, keep_seconds: float, limit: int = MAX_REMEMBERED) -> None:
        self._keep_seconds, self._limit = keep_seconds, limit
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, digest: bytes, now: float) -> bool:
        """Remember `digest`; False when it was seen within the time kept."""
        with self._lock:
            while self._seen and (
                len(self._seen) >= self._limit
                or next(iter(self._seen.values())) <= now - self._keep_seconds
            ):
                self._seen.popitem(last=False)
            if digest in self._seen:
                return False
            self._seen[digest] = now
            return True


class MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot parse (a bad header, a bad length) as an error with a
    traceback, after answering it 400 itself. From a receiver anyone on the network can reach
    that is noise, so such a record becomes one line at INFO, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, http_exceptions.HttpProcessingError):
            record.msg, record.args = "refused a malformed HTTP request: %s", (error.message,)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_MALFORMED_REQUESTS = MalformedRequests()


def make_app(
    secrets: HookSecrets, wake: Wake, clock: Callable[[], float] = time.time
) -> web.Application:
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED_REQUESTS)  # once: same instance
    # A secret is valid for two windows at most; a delivery is remembered as long.
    recent = RecentDeliveries(2 * secrets.window_seconds)

    def refused(status: int, error: str) -> web.Response:
        return web.json_response({"error": error}, status=status)

    async def receive(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not (_DNS_LABEL.match(namespace) and _DNS_LABEL.match(name)):
            return refused(404, "namespace and name must be DNS labels")
        given = request.headers.get(SECRET_HEADER)
        if not given:
            return refused(401, f"missing {SECRET_HEADER}")
        now = clock()
        if not secrets.accepts(given, namespace, name, now):
            return refused(403, f"wrong or expired {SECRET_HEADER}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return refused(413, f"body larger than {MAX_BODY_BYTES} bytes")
        digest = hashlib.sha256(f"{namespace}/{name}\n".encode() + body).digest()
        if not recent.first_time(digest, now):
            return refused(409, "replayed delivery: this body was delivered before")
        try:
            await asyncio.to_thread(wake, namespace, name)
        except Exception as exc:  # the project may be gone; Label Studio will not retry anyway
            logger.warning("webhook for %s/%s not delivered: %s", namespace, name, exc)
            return refused(404, "project not woken")
        return web.json_response({"woken": f"{namespace}/{name}"}, status=202)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post(hook_path("{namespace}", "{name}"), receive)
    return app


def loop_wake(context: OperatorContext) -> Wake:
    """Wake a project's reconcile loop; LookupError when this operator runs none for it."""

    def wake(namespace: str, name: str) -> None:
        if not context.wakeups.wake(ObjectKey(ANNOTATION_PROJECT.kind, namespace, name)):
            raise LookupError(f"no AnnotationProject {namespace}/{name} is reconciled here")

    return wake


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for the receiver: TLS 1.2 or newer, the given certificate chain."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@kopf.on.startup()
async def start_receiver(memo: kopf.Memo, **_: Any) -> None:
    context: OperatorContext = memo["context"]
    listen = context.config.webhook_listen
    if not listen:
        return
    host, _sep, port = listen.rpartition(":")
    tls = context.config.webhook_tls
    app = make_app(context.webhook_secrets, loop_wake(context))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_context = tls_context(*tls) if tls else None
    await web.TCPSite(runner, host or "0.0.0.0", int(port), ssl_context=ssl_context).start()
    memo[_RUNNER] = runner
    logger.info("webhook receiver listening on %s (%s)", listen, "HTTPS" if tls else "HTTP")


@kopf.on.cleanup()
async def stop_receiver(memo: kopf.Memo, **_: Any) -> None:
    runner: web.AppRunner | None = memo.get(_RUNNER)
    if runner is not None:
        await runner.cleanup()
