"""How GitOps tools read labelloop's objects, with their real engines.

- Argo CD: the chart's Lua health check, run by a real Lua runtime as Argo CD runs it.
- kstatus (Flux's and kpt's reading of any object) and Flux's CEL health checks
  (`spec.healthCheckExprs`): `hack/kstatus`, a Go program over the real libraries, built by
  `hack/build-cluster-tools.sh` into `.cache/bin`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lupa
import yaml

from paths import REPO_ROOT

ARGOCD = REPO_ROOT / "charts" / "labelloop" / "argocd"
FLUX_HEALTH_CHECKS = REPO_ROOT / "charts" / "labelloop" / "flux" / "health-check-exprs.yaml"
KSTATUS = REPO_ROOT / ".cache" / "bin" / "kstatus"


def argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    """Argo CD's health of `obj`: the script runs with the object as the global `obj`, and
    its returned table is read."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGOCD / "health.lua").read_text())
    return {"status": result["status"], "message": result["message"]}


def build_kstatus() -> Path:
    """The kstatus tool, built from hack/kstatus if its sources changed (a no-op otherwise)."""
    subprocess.run(
        [str(REPO_ROOT / "hack" / "build-cluster-tools.sh"), "kstatus"], check=True, timeout=900
    )
    return KSTATUS


def kstatus(objects: Iterable[dict[str, Any]], *, flux: bool = False) -> list[dict[str, str]]:
    """Each object's status and message as kstatus computes them, or, with `flux`, as Flux
    evaluates the chart's health check expressions."""
    args = [str(KSTATUS)]
    if flux:
        args += ["--flux-health-checks", str(FLUX_HEALTH_CHECKS)]
    documents = yaml.safe_dump_all(list(objects))
    out = subprocess.run(
        args, input=documents, capture_output=True, text=True, check=True, timeout=60
    )
    found: list[dict[str, str]] = json.loads(out.stdout)
    return found
