"""A Label Studio server run as a local process: SQLite in a data directory, loopback only.

Used by `labelloop run` for an AnnotationProject in managed mode (and by the tests' session
fixture). The executable is `$LABELLOOP_LABEL_STUDIO`, else `.venv-labelstudio/bin/label-studio`
of this checkout or of the current directory (`make install-labelstudio`), else `label-studio`
on the PATH.

The server binds 127.0.0.1 on the port asked for, with an admin user and a legacy API token,
and sends nothing out (no version check, no Sentry, no analytics). Measured on a 2-core
machine (Label Studio 1.23.2): the first start, which migrates a new SQLite database, takes
50 s with the CPUs to itself and up to 80 s while other work runs; `stop()` takes under a
second and `start()` again 12-17 s.

Webhook and ML backend URLs pointing at receivers on this machine: use `127.0.0.1`, e.g.
`http://127.0.0.1:9090`. Label Studio checks the two differently. Webhook URLs go through
Django's URL validation, which wants an IP address, `localhost` or a dotted name (a bare host
name is refused); ML backend URLs must resolve when they are saved. `127.0.0.1` passes both
and needs no name lookup.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .processes import stop_process_group

EXECUTABLE_ENV = "LABELLOOP_LABEL_STUDIO"
_CHECKOUT = Path(__file__).resolve().parents[3]

# Generous: the first start runs every migration, on CPUs that other work may share.
FIRST_START_DEADLINE_S = 300.0
RESTART_DEADLINE_S = 120.0
STOP_GRACE_S = 20.0

# runserver announces the port it really bound; Label Studio moves to the next free port
# without saying so anywhere else.
_LISTENING = re.compile(r"Starting development server at http://[^:/]+:(\d+)/")
# Settings of an outer shell that would point the server elsewhere (PostgreSQL, another
# data directory, a token of its own).
_FOREIGN_ENV_PREFIXES = ("LABEL_STUDIO_", "DJANGO_", "POSTGRE_")


class LabelStudioStartError(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


def find_label_studio() -> Path:
    """The label-studio executable (see the module docstring for the search order)."""
    given = os.environ.get(EXECUTABLE_ENV)
    if given:
        path = Path(given)
        if not path.exists():
            raise LabelStudioStartError(f"${EXECUTABLE_ENV} names {path}, which does not exist")
        return path
    for root in (_CHECKOUT, Path.cwd()):
        candidate = root / ".venv-labelstudio" / "bin" / "label-studio"
        if candidate.exists():
            return candidate
    on_path = shutil.which("label-studio")
    if on_path:
        return Path(on_path)
    raise LabelStudioStartError(
        "label-studio not found: run `make install-labelstudio`, or set "
        f"${EXECUTABLE_ENV} to the executable"
    )


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the server checks again and may move on)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LabelStudioServer:
    """A Label Studio server process; `stop()` and `start()` again keep its data.

    Projects, tasks and users survive a restart, and so do `url` and `token`.
    """

    data_dir: Path
    log_path: Path
    port: int
    executable: Path = field(default_factory=find_label_studio)
    username: str = "admin@labelloop.test"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    token: str = field(default_factory=lambda: secrets.token_hex(20))  # 40: the field's size
    last_start_s: float = 0.0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _started_before: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once GET /health answers UP."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # A data directory migrated before needs no migrations: the shorter deadline.
        first = not self._started_before and not (self.data_dir / "label_studio.sqlite3").exists()
        deadline_s = FIRST_START_DEADLINE_S if first else RESTART_DEADLINE_S
        began = time.monotonic()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    str(self.executable),
                    "start",
                    "--no-browser",
                    "--internal-host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so that stop() ends it all
            )
        try:
            port = self._wait_for_port(log_offset, began + deadline_s)
            if port != self.port:
                if self._started_before:
                    raise LabelStudioStartError(
                        f"port {self.port} was taken while the server was down; "
                        f"Label Studio moved to {port}, but clients still use {self.url}"
                    )
                self.port = port
            self._wait_for_health(began + deadline_s)
        except BaseException:
            self.stop()
            raise
        self._started_before = True
        self.last_start_s = time.monotonic() - began

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after a grace period) and wait for it."""
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process, STOP_GRACE_S)

    def create_user(self, name: str) -> int:
        """A Label Studio user, e.g. one per simulated annotator (labelloop's client has no
        call for it: the operator never makes users)."""
        response = httpx.post(
            f"{self.url}/api/users/",
            headers={"Authorization": f"Token {self.token}"},
            json={"username": name, "email": f"{name}@labelloop.test", "first_name": name},
            timeout=10,
        )
        response.raise_for_status()
        return int(response.json()["id"])

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV_PREFIXES)}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),  # SQLite and media live here
            LABEL_STUDIO_USERNAME=self.username,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            # New organisations accept only JWT personal access tokens unless this is set on
            # the first start; labelloop is configured with a plain token.
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LATEST_VERSION_CHECK="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            COLLECT_ANALYTICS="false",
            # Since 1.23.1 Label Studio refuses webhooks and ML backends on loopback and private
            # addresses (SSRF protection). This server is bound to loopback and its ML backends
            # and webhook receivers run on 127.0.0.1 beside it, so the protection is lifted
            # here, on purpose and only for this local server.
            SSRF_PROTECTION_ENABLED="false",
            ML_BLOCK_LOCAL_IP="false",
        )
        return env

    def _wait_for_port(self, log_offset: int, deadline: float) -> int:
        while time.monotonic() < deadline:
            self._check_alive()
            with self.log_path.open("rb") as log:
                log.seek(log_offset)
                announced = _LISTENING.search(log.read().decode(errors="replace"))
            if announced:
                return int(announced.group(1))
            time.sleep(0.25)
        raise self._failure("did not announce its port in time")

    def _wait_for_health(self, deadline: float) -> None:
        last = "no answer yet"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = httpx.get(f"{self.url}/health", timeout=2.0)
                if response.status_code == 200 and response.json().get("status") == "UP":
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.25)
        raise self._failure(f"GET {self.url}/health did not answer UP in time ({last})")

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise self._failure(f"exited with status {self._process.returncode}")

    def _failure(self, what: str) -> LabelStudioStartError:
        return LabelStudioStartError(
            f"Label Studio ({self.executable}) {what}. Log {self.log_path}, last lines:\n"
            f"{self.log_tail()}"
        )
