"""The HTTP side of the prelabel server: Starlette routes on uvicorn.

uvicorn's event loop holds every connection (kept alive between Label Studio's calls), with
a listen backlog of `BACKLOG` so a burst of annotators opening tasks queues in the kernel
instead of being reset; the model runs in the batcher's one worker thread
(`request_batcher.py`), never in the loop. On SIGTERM uvicorn stops accepting, lets the
requests in flight finish (up to `GRACEFUL_S`), then the batcher closes.

A body is read only up to `MAX_BODY_BYTES`: a larger declared `Content-Length` is refused
unread, a chunked body once it passes the limit. Every refusal is JSON `{error, field}`,
404 and 405 included, and is counted in `/metrics` like any answer.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from labelloop.api.labelconfig import LabelSchema
from labelloop_trainer.serving.app import (
    BasicAuth,
    ErrorResponse,
    Limits,
    PrelabelApp,
    RequestError,
)
from labelloop_trainer.serving.chain import Scorer

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Far above 10,000 Label Studio tasks of ordinary text; a larger body is refused."""
BACKLOG = 2048
"""Connections the kernel queues before the server accepts them (the standard library's
server had 5, and reset the rest)."""
KEEP_ALIVE_S = 75
"""Longer than HTTP clients' idle pools keep a connection, so the server never closes one
a client is about to reuse."""
GRACEFUL_S = 25
"""Under Kubernetes' default 30 s termination grace period."""
JSON = "application/json"
PATHS = ("/health", "/versions", "/setup", "/predict", "/webhook", "/metrics")

log = logging.getLogger("labelloop_trainer.serving.serve")

Handler = Callable[[Request], Awaitable[Response]]


def asgi_app(app: PrelabelApp) -> Starlette:
    """The routes of `app`, each timed and counted under its path."""

    async def health(_: Request) -> Response:
        return _model(app.health())

    async def versions(_: Request) -> Response:
        return _model(app.versions())

    async def metrics(_: Request) -> Response:
        body, content_type = app.metrics.exposition()
        return Response(body, media_type=content_type)

    async def setup(request: Request) -> Response:
        app.check_auth(request.headers.get("authorization"))
        return _model(app.setup(await read_body(request)))

    async def predict(request: Request) -> Response:
        app.check_auth(request.headers.get("authorization"))
        return _model(await app.predict(await read_body(request)))

    async def webhook(request: Request) -> Response:
        app.check_auth(request.headers.get("authorization"))
        return _model(app.webhook(await read_body(request)))

    def timed(path: str, handler: Handler) -> Handler:
        async def answer(request: Request) -> Response:
            began = time.perf_counter()
            try:
                response = await handler(request)
            except RequestError as err:
                log.info("%s %s refused (%d): %s", request.method, path, err.status, err)
                response = error_response(err)
            except Exception:
                log.exception("%s %s failed", request.method, path)
                response = Response(
                    _model_json(ErrorResponse(error="internal error; see the log", field="")),
                    status_code=500,
                    media_type=JSON,
                )
            app.metrics.requests.labels(path, str(response.status_code)).inc()
            app.metrics.latency.labels(path).observe(time.perf_counter() - began)
            return response

        return answer

    async def refused(request: Request, exc: Exception) -> Response:
        """Starlette's own 404 and 405, in the same shape as every other refusal."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            err = RequestError(405, "method", f"{request.url.path} does not take {request.method}")
        else:
            err = RequestError(exc.status_code, "path", f"no endpoint; the endpoints: {PATHS}")
        app.metrics.requests.labels("other", str(err.status)).inc()
        return error_response(err)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await app.close()

    routes = [
        Route("/health", timed("/health", health), methods=["GET", "HEAD"]),
        Route("/versions", timed("/versions", versions), methods=["GET"]),
        Route("/metrics", timed("/metrics", metrics), methods=["GET"]),
        Route("/setup", timed("/setup", setup), methods=["POST"]),
        Route("/predict", timed("/predict", predict), methods=["POST"]),
        Route("/webhook", timed("/webhook", webhook), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: refused}, lifespan=lifespan)


async def read_body(request: Request) -> bytes:
    """The body, up to `MAX_BODY_BYTES`; 413 beyond (a declared length is refused unread)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise RequestError(400, "Content-Length", f"not a number: {declared!r}") from None
        if size > MAX_BODY_BYTES:
            raise RequestError(413, "body", f"{size} bytes; at most {MAX_BODY_BYTES}")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise RequestError(413, "body", f"more than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(err: RequestError) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="labelloop"'} if err.status == 401 else None
    body = _model_json(ErrorResponse(error=err.message, field=err.field))
    return Response(body, status_code=err.status, media_type=JSON, headers=headers)


def _model(model: BaseModel) -> Response:
    return Response(_model_json(model), media_type=JSON)


def _model_json(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True).encode()


class PrelabelServer:
    """One `PrelabelApp` on uvicorn, its socket bound at construction (so port 0 is known)."""

    def __init__(self, app: PrelabelApp, host: str, port: int) -> None:
        self.app = app
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=BACKLOG)
        config = uvicorn.Config(
            asgi_app(app),
            lifespan="on",
            log_config=None,
            access_log=False,
            backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_S,
            server_header=False,
        )
        self._uvicorn = uvicorn.Server(config)

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def started(self) -> bool:
        """Whether it serves: the socket accepts earlier, but the app must have started too."""
        return self._uvicorn.started

    def serve_forever(self) -> None:
        """Serve until `shutdown()` or, in the main thread, SIGTERM or SIGINT."""
        self._uvicorn.run(sockets=[self.socket])

    def shutdown(self) -> None:
        """Ask the server to stop gracefully (from any thread)."""
        self._uvicorn.should_exit = True

    def server_close(self) -> None:
        self.socket.close()


def build_server(
    scorer: Scorer,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    limits: Limits | None = None,
    auth: BasicAuth | None = None,
    default_schema: LabelSchema | None = None,
) -> PrelabelServer:
    """A bound server (not yet serving); `serve_forever()` it, e.g. in a thread."""
    app = PrelabelApp(scorer, limits=limits, auth=auth, default_schema=default_schema)
    return PrelabelServer(app, host, port)


@contextlib.contextmanager
def serving(server: PrelabelServer) -> Iterator[str]:
    """Serve in a background thread (tests, the local runner); yields the server's URL."""
    thread = threading.Thread(target=server.serve_forever, name="prelabel-http", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the prelabel server stopped while starting; see its log")
            time.sleep(0.01)
        yield server.url
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
