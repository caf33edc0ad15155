"""Control-plane tests share one cluster with the CRDs installed once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.cluster import Cluster

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The cluster with labelloop's CRDs applied and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l", "", "--all"
    )
    return cluster
