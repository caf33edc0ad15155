"""Shared test set-up.

The session fixtures that start real parts live in `tests/fixtures/`: the local control plane
(`cluster`) and a Label Studio server (`label_studio`), the operator with its Helm chart
(`operator`), and the example environment on the cluster's real node (`local_env`). Each
starts once per test session and fails loudly, never skips, when it cannot.
Shared paths are in `tests/paths.py`.
"""

pytest_plugins = [
    "fixtures.cluster",
    "fixtures.labelstudio",
    "fixtures.operator",
    "fixtures.local_env",
]
