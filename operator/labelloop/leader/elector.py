"""The elector's loops, and `leadership`: hold the Lease for as long as a block of code runs.

A standby reads the Lease every `retry_period` and takes it when `policy.next_move` says so.
The leader renews it every `retry_period` from a thread of its own; when a renewal has not
succeeded for `renew_deadline`, or the Lease names someone else, it has lost, and `on_lost` is
called at once (the operator exits the process there: Kubernetes restarts it as a standby,
and nothing of the old leadership acts on). When the block ends, the leader releases the
Lease, so a standby takes over at its next attempt instead of after `lease_duration`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .. import metrics
from .lease import LeaseStore, describe
from .policy import (
    Move,
    Sighting,
    Timing,
    claimed,
    identity,
    next_move,
    released,
    renewal_overdue,
    sight,
)

logger = logging.getLogger(__name__)


def new_identity(pod_name: str) -> str:
    """This process's identity as a candidate: its pod name and a random suffix."""
    return identity(pod_name, secrets.token_hex(4))


class LeadershipLost(Exception):
    """The leader read a Lease that names another holder, or none."""


class Elector:
    """One candidate for one Lease: `acquire` blocks until it leads, `keep` renews until it
    stops or loses, `release` hands the Lease back."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: Timing,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.identity, self.timing = store, identity, timing
        self._clock, self._wall_clock = clock, wall_clock
        self._sighting: Sighting | None = None
        self._leading = False
        self._last_renewed = 0.0

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def holder(self) -> str:
        """The holder of the Lease as last read (empty: none, or not read yet)."""
        return self._sighting.record.holder if self._sighting else ""

    @property
    def lease(self) -> str:
        return f"{self.store.namespace}/{self.store.name}"

    def attempt(self) -> bool:
        """Read the Lease and make one move; True when this candidate holds it afterwards.

        Raises LeadershipLost when it was leading and the Lease says otherwise, and the
        store's errors when the API cannot be reached.
        """
        started = self._clock()
        timeout = self._request_timeout(started)
        record = self.store.read(timeout)
        before = self.holder
        self._sighting = sight(self._sighting, record, started)
        move = next_move(
            self._sighting,
            self.identity,
            started,
            leading=self._leading,
            lease_duration=self.timing.lease_duration,
        )
        if move is Move.STEP_DOWN:
            raise LeadershipLost(f"the Lease now names {self.holder or 'no holder'}")
        if move is Move.WAIT:
            if self.holder != before:
                logger.info("standby: Lease %s is held by %s", self.lease, self.holder)
            return False
        spec = claimed(record, self.identity, self._wall_clock(), self.timing.lease_duration)
        if record is None:
            written = self.store.create(spec, timeout)
        else:
            written = self.store.replace(record.version, spec, timeout)
        if written is None:  # another candidate wrote first; the next read shows whom
            return False
        self._sighting = Sighting(written, self._clock())
        # Counted from before the read: the deadline errs on the side of stopping early.
        self._last_renewed = started
        if not self._leading:
            self._leading = True
            logger.info(
                "leading: %s Lease %s as %s (transition %d)",
                "created" if move is Move.CREATE else "took over",
                self.lease,
                self.identity,
                written.transitions,
            )
        return True

    def acquire(self) -> None:
        """Block until this candidate holds the Lease."""
        logger.info("standby: waiting for Lease %s as %s", self.lease, self.identity)
        while True:
            try:
                if self.attempt():
                    return
            except Exception as error:  # whatever the API says, a standby only retries
                logger.warning(
                    "standby: cannot read or take Lease %s: %s", self.lease, describe(error)
                )
            time.sleep(self.timing.retry_period)

    def keep(self, stop: threading.Event) -> str | None:
        """Renew every `retry_period` until `stop` is set (None) or leadership is lost (why)."""
        while not stop.wait(self.timing.retry_period):
            # Checked before the request too: a process that was frozen (a stopped container,
            # a paused VM) may wake long past its deadline, with a standby already leading.
            if not self._overdue():
                try:
                    self.attempt()
                except LeadershipLost as lost:
                    self._leading = False
                    return str(lost)
                # Any failure only costs this attempt: the deadline decides, and this thread
                # must never die while the process acts on the Lease.
                except Exception as error:
                    logger.warning(
                        "leading: cannot renew Lease %s: %s", self.lease, describe(error)
                    )
            if self._overdue():
                self._leading = False
                return f"no renewal for {self.timing.renew_deadline:g}s"
        return None

    def release(self) -> None:
        """Hand the Lease back if this candidate still holds it. A failure is only logged: the
        Lease then expires after its duration."""
        if not self._leading:
            return
        self._leading = False
        try:
            record = self.store.read(self.timing.renew_deadline)
            if record is not None and record.holder == self.identity:
                spec = released(record, self._wall_clock())
                if self.store.replace(record.version, spec, self.timing.renew_deadline):
                    logger.info("released Lease %s", self.lease)
        except Exception as error:
            logger.warning("could not release Lease %s: %s", self.lease, describe(error))

    def _overdue(self) -> bool:
        return renewal_overdue(self._last_renewed, self._clock(), self.timing.renew_deadline)

    def _request_timeout(self, now: float) -> float:
        # A leader's request must end by its deadline, or a hung connection would keep it
        # acting past the point where a standby may take over.
        if self._leading:
            return max(0.1, self._last_renewed + self.timing.renew_deadline - now)
        return self.timing.renew_deadline


@contextmanager
def leadership(
    elector: Elector,
    health_url: str | None,
    on_lost: Callable[[str], None],
    on_leading: Callable[[], object] | None = None,
) -> Iterator[None]:
    """Run the block only while `elector` holds its Lease.

    Until it does, the process is a standby: `health_url` (the liveness endpoint the block
    serves once it runs) answers 200 meanwhile, since a standby is healthy. Once it leads,
    `on_leading()` runs before the block. While the block runs a thread renews the Lease,
    calling `on_lost(reason)` if leadership is lost. After it, the Lease is released.
    """
    with _standby_health(health_url, elector):
        elector.acquire()
    metrics.LEADER.set(1)
    stop = threading.Event()

    def renew() -> None:
        reason = elector.keep(stop)
        if reason is not None:
            metrics.LEADER.set(0)
            on_lost(reason)

    renewer = threading.Thread(target=renew, name="lease-renewal", daemon=True)
    renewer.start()
    try:
        if on_leading is not None:
            on_leading()
        yield
    finally:
        stop.set()
        renewer.join()
        elector.release()
        metrics.LEADER.set(0)


@contextmanager
def _standby_health(url: str | None, elector: Elector) -> Iterator[None]:
    """Answer `url` (http://host:port/path) with 200 and the Lease's holder."""
    if not url:
        yield
        return
    parts = urlsplit(url)

    class StandbyHealth(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path != parts.path:
                self.send_error(404)
                return
            body = json.dumps(
                {"standby": True, "lease": elector.lease, "holder": elector.holder}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds; nothing worth a line

    server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 80), StandbyHealth)
    serving = threading.Thread(target=server.serve_forever, name="standby-health", daemon=True)
    serving.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        serving.join()
