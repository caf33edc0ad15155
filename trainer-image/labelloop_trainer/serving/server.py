"""The HTTP plumbing of the prelabel server: a request in, `PrelabelApp.handle`, an answer out.

The standard library's threading server: a thread per connection is plenty, since every
request thread only parses JSON and then waits for the one batching worker, which is where
the time goes; and it adds no dependency to the trainer image. HTTP/1.1 keeps Label
Studio's connections open between calls. A body is read only when its `Content-Length` is
given and within `MAX_BODY_BYTES`; otherwise the answer is a 4xx and the connection closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from labelloop.api.labelconfig import LabelSchema
from labelloop_trainer.serving.app import BasicAuth, Limits, PrelabelApp, Response
from labelloop_trainer.serving.chain import Scorer

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Far above 1000 tasks of ordinary text; a larger body is refused unread."""

log = logging.getLogger("labelloop_trainer.serving.serve")


class PrelabelHandler(BaseHTTPRequestHandler):
    """Reads a request, hands it to the app, writes the answer."""

    protocol_version = "HTTP/1.1"
    server_version = "labelloop-prelabel"
    # An answer goes out as two writes (headers, then body). With Nagle's algorithm on, the
    # body waits for the client to acknowledge the headers, and clients delay that ack by up
    # to 40 ms: on a kept-alive connection that caps every client at about 25 answers per
    # second, whatever the model costs.
    disable_nagle_algorithm = True
    server: PrelabelServer

    def do_GET(self) -> None:
        self._answer(b"")

    def do_HEAD(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            self._error(411, "Content-Length", "required (chunked bodies are not accepted)")
            return
        try:
            size = int(length)
        except ValueError:
            self._error(400, "Content-Length", f"not a number: {length!r}")
            return
        if size < 0 or size > MAX_BODY_BYTES:
            self._error(413, "body", f"{size} bytes; at most {MAX_BODY_BYTES}")
            return
        self._answer(self.rfile.read(size))

    def do_PUT(self) -> None:
        self._answer(b"")

    def do_DELETE(self) -> None:
        self._answer(b"")

    def _answer(self, body: bytes) -> None:
        response = self.server.app.handle(self.command, self.path, dict(self.headers), body)
        self._send(response)

    def _error(self, status: int, field: str, message: str) -> None:
        # The body was not read, so the connection cannot carry another request.
        self.close_connection = True
        payload = json.dumps({"error": message, "field": field}).encode()
        self._send(Response(status, payload, headers={"Connection": "close"}))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Access log at debug level: method, path and status only, never a body."""
        log.debug("%s %s", self.address_string(), format % args)


class PrelabelServer(ThreadingHTTPServer):
    """The HTTP server of one `PrelabelApp`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: PrelabelApp) -> None:
        self.app = app
        super().__init__(address, PrelabelHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.app.close()


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
    try:
        return PrelabelServer((host, port), app)
    except OSError:
        app.close()
        raise


@contextlib.contextmanager
def serving(server: PrelabelServer) -> Iterator[str]:
    """Serve in a background thread (tests, the local runner); yields the server's URL."""
    thread = threading.Thread(target=server.serve_forever, name="prelabel-http", daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
