"""`labelloop run`, `crds` and `demo` never load kopf or the controllers: only `labelloop
operator` does. Each probe runs in a fresh interpreter, so nothing imported by other tests
hides an import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import contextlib, io, json, sys
from labelloop import cli
args = json.loads(sys.argv[1])
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = cli.main(args)
    except SystemExit as done:  # --help, or argparse refusing the arguments
        code = done.code
loaded = sorted(m for m in sys.modules if m == "kopf" or m.startswith("labelloop.controllers"))
print(json.dumps({"code": code, "loaded": loaded, "output": out.getvalue()[-2000:]}))
"""


def probe(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("crds", "--help"),
        ("run", "--help"),
        ("demo", "--help"),
        ("operator", "--help"),  # parsing the operator's flags loads nothing either
    ],
)
def test_help_loads_no_kopf(args: tuple[str, ...]) -> None:
    result = probe(*args)
    assert result["code"] == 0, result["output"]
    assert result["loaded"] == []


def test_crds_and_a_failing_run_load_no_kopf(tmp_path: Path) -> None:
    # `crds` writes the CRDs; `run` on a directory without manifests stops at loading them,
    # after importing everything the local runner needs.
    assert probe("crds", "--output", f"{tmp_path}/crds")["loaded"] == []
    result = probe("run", "-f", f"{tmp_path}/nothing-here")
    assert result["code"] == 2, result["output"]
    assert "not a directory" in str(result["output"])
    assert result["loaded"] == []


def test_the_local_runner_and_the_demo_load_no_kopf() -> None:
    code = (
        "import sys, labelloop.local.runner, labelloop.local.demo, labelloop.steps.prelabel;"
        "print(sorted(m for m in sys.modules if m == 'kopf' or "
        "m.startswith('labelloop.controllers')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert loaded == "[]"


def test_the_operator_does_load_kopf() -> None:
    """The probe can see an import: `labelloop operator` itself loads kopf."""
    code = "import sys, labelloop.operator; print('kopf' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    assert loaded == "True"
