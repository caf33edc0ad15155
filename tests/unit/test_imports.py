"""What importing a module costs: the trainer, the prelabel server and the loop's policy
start without the SDK."""

from __future__ import annotations

import subprocess
import sys

SDK = "m.startswith(('label_studio_sdk', 'pandas'))"


def loaded_after(modules: str, unwanted: str) -> str:
    """The modules matching `unwanted` (a test of `m`) that importing `modules` loads, in a
    fresh interpreter."""
    probe = f"import sys, {modules}; print(sorted(m for m in sys.modules if {unwanted}))"
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_label_config_parser_does_not_import_the_sdk() -> None:
    assert loaded_after("labelloop.api.labelconfig", SDK) == "[]"


def test_the_loops_pure_policy_reads_label_studio_models_without_the_sdk() -> None:
    modules = (
        "labelloop.loop.counting, labelloop.loop.consistency, labelloop.loop.prelabels,"
        " labelloop.labelstudio.errors"
    )
    assert loaded_after(modules, SDK) == "[]"


def test_the_trainer_loads_neither_the_sdk_nor_the_operators_client() -> None:
    modules = (
        "labelloop_trainer.cli, labelloop_trainer.training.export,"
        " labelloop_trainer.training.jobfile, labelloop_trainer.serving.serve"
    )
    unwanted = (
        f"{SDK} or m.startswith('kopf')"
        " or (m.startswith('labelloop.') and not m.startswith('labelloop.api'))"
    )
    assert loaded_after(modules, unwanted) == "[]"


def test_the_operator_runs_without_pandas() -> None:
    """The SDK's `LabelStudio` client pulls in pandas (and faker) for export helpers that
    labelloop does not use; the operator's client is the SDK's base client."""
    unwanted = "m.startswith(('pandas', 'faker', 'label_studio_sdk.projects.exports.client_ext'))"
    assert loaded_after("labelloop.operator, labelloop.cli", unwanted) == "[]"
