"""Run the operator's training Job here, as a local process: the same command, environment and
job file, with the pod's paths moved under a local directory.

The Job and its ConfigMap come from the operator's builders (`resources/training.py`) or from
a real API server where the operator made them. What the pod gets from Kubernetes is
supplied here: the node rank (0), the secrets' values, the volumes (`/mnt/<claim>` becomes
`<root>/mnt/<claim>`), the termination log and the rendezvous address (pod 0's cluster DNS
name becomes 127.0.0.1 on a free port).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_FILE = "/etc/labelloop/job.json"
RESULT_FILE = "/dev/termination-log"


@dataclass(frozen=True)
class LocalRun:
    """The finished process and where its pod paths were."""

    process: subprocess.CompletedProcess[str]
    root: Path
    job_file: dict[str, Any]
    """The job file as the operator wrote it (pod paths)."""

    def local(self, pod_path: str) -> Path:
        """Where a path of the pod is here."""
        return self.root / pod_path.lstrip("/")

    def result(self) -> dict[str, Any]:
        """The termination message: the result line the operator reads."""
        parsed: dict[str, Any] = json.loads(self.local(RESULT_FILE).read_text(encoding="utf-8"))
        return parsed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(container: Mapping[str, Any], secrets: Mapping[tuple[str, str], str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
        else:  # the completion index annotation: the node rank
            env[item["name"]] = "0"
    return env


def run_job_locally(
    job: Mapping[str, Any],
    config_map: Mapping[str, Any],
    root: Path,
    *,
    secrets: Mapping[tuple[str, str], str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> LocalRun:
    """Run the Job's container command with its job file; volumes must be under `root/mnt`."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["torchrun"]
    job_file = json.loads(config_map["data"]["job.json"])
    localised = json.loads(json.dumps(job_file).replace('"/mnt/', f'"{root.as_posix()}/mnt/'))
    config = root / CONFIG_FILE.lstrip("/")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(localised), encoding="utf-8")
    (root / "dev").mkdir(exist_ok=True)

    env = _env(container, secrets or {})
    env["LABELLOOP_MASTER_ADDR"] = "127.0.0.1"
    env["LABELLOOP_RESULT_FILE"] = str(root / RESULT_FILE.lstrip("/"))
    port = _free_port()
    args = []
    for template in container["args"]:
        arg = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], template)
        arg = re.sub(r"^--master-port=\d+$", f"--master-port={port}", arg)
        args.append(arg.replace(f"--config={CONFIG_FILE}", f"--config={config}"))
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env, **(extra_env or {})},
        check=False,
    )
    return LocalRun(process, root, job_file)
