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
