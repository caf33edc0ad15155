"""One Label Studio client per server and token, shared by every project on that server.

Projects on one server reuse one connection pool instead of opening their own each pass, and
all their requests share one bound (`per_server` in flight at once), however many projects
reconcile together: a thousand projects never mean a thousand concurrent requests.
"""

from __future__ import annotations

import threading

from .client import LabelStudioClient

DEFAULT_REQUESTS_PER_SERVER = 4


class LabelStudioClients:
    """The shared clients, made on first use; safe to use from any thread."""

    def __init__(
        self,
        per_server: int = DEFAULT_REQUESTS_PER_SERVER,
        *,
        timeout: float = 10.0,
        retries: int = 2,
    ) -> None:
        self._per_server, self._timeout, self._retries = per_server, timeout, retries
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._clients: dict[tuple[str, str], LabelStudioClient] = {}

    def client(self, url: str, token: str) -> LabelStudioClient:
        """The client of the server at `url` for `token` (never close it: it is shared)."""
        server = url.rstrip("/")
        with self._lock:
            found = self._clients.get((server, token))
            if found is not None:
                return found
            slots = self._slots.setdefault(server, threading.BoundedSemaphore(self._per_server))
        # Made outside the lock: the SDK may refuse the token, and that must not block others.
        made = LabelStudioClient(
            server, token, timeout=self._timeout, retries=self._retries, slots=slots
        )
        with self._lock:
            kept = self._clients.setdefault((server, token), made)
        if kept is not made:
            made.close()
        return kept

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
