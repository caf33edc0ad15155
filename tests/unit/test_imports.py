"""What importing a module costs: the trainer and the prelabel server start without the SDK."""

from __future__ import annotations

import subprocess
import sys

from labelloop import labelstudio


def test_the_label_config_parser_does_not_import_the_sdk() -> None:
    probe = (
        "import sys, labelloop.api.labelconfig;"
        "print(sorted(m for m in ('label_studio_sdk', 'pandas') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_every_exported_name_loads_on_first_use() -> None:
    for name in labelstudio.__all__:
        assert getattr(labelstudio, name).__name__ == name


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
