"""Paths the tests share. Import from here, never from a conftest: pytest loads every
conftest.py under the same module name, so `from conftest import X` finds whichever loaded last."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021), CC BY 4.0.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
