"""The trainer and the prelabel server, run as local processes of `labelloop_trainer`.

Both are the very programs a cluster runs in its pods: `train --config job.json` (the
contract in docs/trainer-contract.md, result in `LABELLOOP_RESULT_FILE`) and `serve`. Each
child gets its own process group, so that stopping the runner (Ctrl-C included) ends them
and whatever they started, and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

STOP_GRACE_S = 10.0
_LISTENING = "listening on "
# Nothing is ever downloaded: the base model is a local directory.
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

ProgressEvent = Mapping[str, Any]


class TrainingFailed(RuntimeError):
    """The trainer exited with an error; the message carries its `error:` line."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def trainer_command(*args: str) -> list[str]:
    """`python -m labelloop_trainer ARGS` with this interpreter (the trainer extra)."""
    return [sys.executable, "-m", "labelloop_trainer", *args]


def _environment(extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **_OFFLINE, **extra}


def stop_process_group(process: subprocess.Popen[Any], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the child's process group (it started one), SIGKILL after `grace_s`."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_trainer(
    job: Mapping[str, Any],
    directory: Path,
    *,
    secret_env: Mapping[str, str],
    on_event: Callable[[ProgressEvent], None] = lambda _: None,
) -> dict[str, Any]:
    """Train one round: write `job.json` in `directory`, run the trainer, return its result.

    stderr's JSON events go to `on_event` as they come, and every stderr line to
    `directory/trainer.log`. `secret_env` (the Label Studio token) reaches only the child's
    environment, never a file or a log.
    """
    directory.mkdir(parents=True, exist_ok=True)
    job_path, result_path = directory / "job.json", directory / "result.json"
    job_path.write_text(json.dumps(job, indent=2, sort_keys=True))
    result_path.unlink(missing_ok=True)
    env = _environment({**secret_env, "LABELLOOP_RESULT_FILE": str(result_path)})
    last_error = ""
    with (directory / "trainer.log").open("a") as log:
        process = subprocess.Popen(
            trainer_command("train", "--config", str(job_path)),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # only the version directory: the result file has it
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stderr is not None
            for line in process.stderr:
                log.write(line)
                if line.startswith("error: "):
                    last_error = line.removeprefix("error: ").strip()
                event = _event(line)
                if event is not None:
                    on_event(event)
            code = process.wait()
        finally:
            stop_process_group(process)
    if code != 0:
        why = last_error or f"see {directory / 'trainer.log'}"
        raise TrainingFailed(f"trainer exited with status {code}: {why}", code)
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def _event(line: str) -> ProgressEvent | None:
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


@dataclass
class PrelabelServer:
    """One `serve` process for one model version, on a free port of 127.0.0.1.

    Starting returns at once; `healthy()` says when it answers `GET /health`, which is what a
    Deployment's readiness probe asks in a cluster.
    """

    version: str
    args: Sequence[str]
    log_path: Path
    url: str | None = None
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def for_version(cls, version: str, directory: Path, log_dir: Path) -> PrelabelServer:
        return cls(version, ["--model", str(directory)], log_dir / f"serve-{version}.log")

    @classmethod
    def zero_shot(cls, base_model: Path, log_dir: Path) -> PrelabelServer:
        from_name = ["--zero-shot", "--base-model", str(base_model)]
        return cls("zero-shot", from_name, log_dir / "serve-zero-shot.log")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exited(self) -> bool:
        """Started, and ended without being stopped: it will never become healthy."""
        return self._process is not None and self._process.poll() is not None

    def start(self) -> None:
        if self.running:
            return
        self.url = None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self._process = subprocess.Popen(
            trainer_command("serve", *self.args, "--host", "127.0.0.1", "--port", "0"),
            env=_environment({}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        log.close()
        assert self._process.stdout is not None
        self._reader = threading.Thread(target=self._read_url, args=(self._process.stdout,))
        self._reader.daemon = True
        self._reader.start()

    def _read_url(self, stdout: IO[str]) -> None:
        for line in stdout:
            if line.startswith(_LISTENING):
                self.url = line.removeprefix(_LISTENING).strip()

    def healthy(self) -> bool:
        if not self.running or self.url is None:
            return False
        try:
            return httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.healthy():
                return True
            if self.exited:
                return False
            time.sleep(0.25)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process)
        self.url = None
