"""The Argo CD health check, run by a real Lua runtime on Argo CD's own test cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_health import ARGOCD, argocd_health

CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: Path(c["inputPath"]).stem)
def test_health_check(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert argocd_health(obj) == case["healthStatus"]


def test_cases_cover_every_status_argo_knows_here() -> None:
    statuses = {c["healthStatus"]["status"] for c in CASES}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
