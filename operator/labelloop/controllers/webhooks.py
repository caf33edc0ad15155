"""The operator's webhook receiver: Label Studio events wake a project's reconcile early.

Label Studio posts each event once, inside the request that caused it, and never again, so
nothing here counts or trusts payloads. A request only stamps the annotation `WAKE_ANNOTATION`
on its AnnotationProject; that change runs the project's ordinary reconcile, which re-reads
everything from Label Studio. A lost or duplicated webhook therefore costs at most a timer
interval of delay, and a forged one at most a reconcile.

Each project's webhook carries a secret header: an HMAC of the project's namespace and name
under a key the operator draws at start and keeps in memory only. A header for one project is
useless for another, and after a restart the reconciles re-register every webhook with the new
key (until then the old headers are refused, and the timer covers the gap). Requests without
the header get 401, with a wrong one 403. The hook itself, and its secret, are
`steps.webhook`'s (the project pass registers it).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

import kopf
from aiohttp import web

from ..api import ANNOTATION_PROJECT, API_VERSION
from ..steps.webhook import SECRET_HEADER, hook_path, project_secret
from .context import OperatorContext

# Outside kopf's `labelloop.io/` prefix, whose annotations kopf leaves out of its diffs: this
# one must be seen as a change.
WAKE_ANNOTATION = "wake.labelloop.io/at"
_RUNNER = "webhook_runner"
logger = logging.getLogger(__name__)


def make_app(key: bytes, context: OperatorContext) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        given = request.headers.get(SECRET_HEADER)
        if not given:
            return web.json_response({"error": f"missing {SECRET_HEADER}"}, status=401)
        if not hmac.compare_digest(given, project_secret(key, namespace, name)):
            return web.json_response({"error": f"wrong {SECRET_HEADER}"}, status=403)
        body = {"metadata": {"annotations": {WAKE_ANNOTATION: str(time.time_ns())}}}
        try:
            await asyncio.to_thread(
                context.kube.patch, API_VERSION, ANNOTATION_PROJECT.kind, name, namespace, body
            )
        except Exception as exc:  # the project may be gone; Label Studio will not retry anyway
            logger.warning("webhook for %s/%s not delivered: %s", namespace, name, exc)
            return web.json_response({"error": "project not woken"}, status=404)
        return web.json_response({"woken": f"{namespace}/{name}"}, status=202)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post(hook_path("{namespace}", "{name}"), receive)
    return app


@kopf.on.startup()
async def start_receiver(memo: kopf.Memo, **_: Any) -> None:
    context: OperatorContext | None = memo.get("context")
    if context is None:  # the operator's own start-up handler has not run yet
        raise kopf.TemporaryError("waiting for the operator context", delay=0.2)
    listen = context.config.webhook_listen
    if not listen:
        return
    host, _sep, port = listen.rpartition(":")
    runner = web.AppRunner(make_app(context.webhook_key, context), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
    memo[_RUNNER] = runner
    logger.info("webhook receiver listening on %s", listen)


@kopf.on.cleanup()
async def stop_receiver(memo: kopf.Memo, **_: Any) -> None:
    runner: web.AppRunner | None = memo.get(_RUNNER)
    if runner is not None:
        await runner.cleanup()
