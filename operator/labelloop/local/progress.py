"""A one-line progress bar: redrawn in place on a terminal, a line per quarter elsewhere."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

WIDTH = 30


@dataclass
class Bar:
    label: str
    total: int = 0
    stream: TextIO | None = None
    done_count: int = 0
    _shown_quarter: int = field(default=-1, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, by: int = 1) -> None:
        with self._lock:
            self.done_count += by
            self._draw()

    def set(self, done: int, total: int, label: str | None = None) -> None:
        with self._lock:
            if label is not None and label != self.label:
                self.label, self._shown_quarter = label, -1
            self.done_count, self.total = done, total
            self._draw()

    def training_event(self, event: Mapping[str, Any]) -> None:
        """Follow the trainer's progress lines (docs/trainer-contract.md)."""
        if event.get("event") == "progress" and event.get("totalSteps"):
            epoch = float(event.get("epoch") or 0)
            self.set(int(event["step"]), int(event["totalSteps"]), f"training (epoch {epoch:.1f})")

    def done(self) -> None:
        with self._lock:
            if self.stream is not None and self._shown_quarter >= 0 and self.stream.isatty():
                self.stream.write("\n")
                self.stream.flush()
            self._shown_quarter, self.done_count = -1, 0

    def _draw(self) -> None:
        if self.stream is None or not self.total:
            return
        share = min(1.0, self.done_count / self.total)
        filled = int(share * WIDTH)
        line = f"  {self.label:<28} [{'#' * filled}{'.' * (WIDTH - filled)}] "
        line += f"{self.done_count}/{self.total}"
        if self.stream.isatty():
            self.stream.write("\r" + line)
            self._shown_quarter = max(self._shown_quarter, 0)
        else:
            quarter = int(share * 4)
            if quarter <= self._shown_quarter:
                return
            self._shown_quarter = quarter
            self.stream.write(line + "\n")
        self.stream.flush()
