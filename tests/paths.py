"""Paths and labelled sentences the tests share. Import from here, never from a conftest:
pytest loads every conftest.py under the same module name, so `from conftest import X` finds
whichever loaded last."""

import json
from collections.abc import Collection
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021), CC BY 4.0.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"


def gold_sentences(count: int, labels: Collection[str]) -> list[dict[str, str]]:
    """The first `count` sentences whose gold label is in `labels`, as task data
    `{text, gold}`."""
    rows = []
    with SHARED_DATA.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            if row["gold_label"] in labels:
                rows.append({"text": row["sentence"], "gold": row["gold_label"]})
            if len(rows) == count:
                return rows
    raise AssertionError(f"{SHARED_DATA} has fewer than {count} sentences labelled {labels}")
