"""Shared test set-up.

The session fixtures that start real parts live in `tests/fixtures/`: the local control plane
(`cluster`) and a Label Studio server (`label_studio`). Each starts once per test session and
fails loudly, never skips, when it cannot.
"""

from pathlib import Path

pytest_plugins = ["fixtures.cluster", "fixtures.labelstudio", "fixtures.operator"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
