"""What importing a module costs: the trainer, the prelabel server and the loop's policy
start without the SDK."""

from __future__ import annotations

import subprocess
import sys


def test_the_label_config_parser_does_not_import_the_sdk() -> None:
    probe = (
        "import sys, labelloop.api.labelconfig;"
        "print(sorted(m for m in ('label_studio_sdk', 'pandas') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_loops_pure_policy_reads_label_studio_models_without_the_sdk() -> None:
    probe = (
        "import sys, labelloop.loop.counting, labelloop.loop.consistency,"
        " labelloop.loop.prelabels, labelloop.labelstudio.errors;"
        "print(sorted(m for m in ('label_studio_sdk', 'pandas') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_trainer_loads_neither_the_sdk_nor_the_operators_client() -> None:
    probe = (
        "import sys, labelloop_trainer.cli, labelloop_trainer.training.export,"
        " labelloop_trainer.training.jobfile, labelloop_trainer.serving.serve;"
        "print(sorted(m for m in sys.modules if m.startswith(('label_studio_sdk', 'kopf'))"
        " or (m.startswith('labelloop.') and not m.startswith('labelloop.api'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
