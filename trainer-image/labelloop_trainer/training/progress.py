"""Progress for people (a bar on a terminal) and for the operator (JSON lines in the log).

In a pod stderr is not a terminal, so every report is one JSON object a line, which the
operator can pick out of the log for the FineTuneJob's live status: `{"event": "progress",
"epoch": 1.5, "step": 120, "totalSteps": 240, "loss": 0.41, "learningRate": …}`, an
`"epoch"` event with the evaluation after each epoch, and free-form `"info"` events. About
twenty progress lines per epoch are logged, so the log stays small whatever the data size.
In a cluster the same steps also go to the FineTuneJob's `status.progress` (`kube_status`).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from labelloop_trainer.training.kube_status import StatusReporter

BAR_WIDTH = 30
LINES_PER_EPOCH = 20


class Progress:
    """Reports of the main process; the other processes pass `enabled=False`."""

    def __init__(
        self,
        enabled: bool = True,
        stream: TextIO | None = None,
        status: StatusReporter | None = None,
    ) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.status = status
        """Where steps also go as the FineTuneJob's live status (rank 0 in a cluster)."""
        self._last_draw = 0.0

    def epoch_end(self) -> None:
        """An epoch ended: the live status shows its last step now, not at the next interval."""
        if self.status is not None:
            self.status.flush()

    def close(self) -> None:
        """Send the last live status."""
        if self.status is not None:
            self.status.close()

    def event(self, event: str, **fields: Any) -> None:
        """Log one event (as a JSON line, or as text on a terminal)."""
        if not self.enabled:
            return
        if self.tty:
            details = " ".join(f"{k}={_short(v)}" for k, v in fields.items())
            self.stream.write(f"\r\033[K{event}: {details}\n")
        else:
            self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()

    def due(self, step_in_epoch: int, epoch_steps: int) -> bool:
        """Whether a step report is due now: the caller then computes the loss it reports
        (reading a GPU loss waits for the GPU, so it is not read on every step)."""
        if not self.enabled:
            return False
        if self.tty:
            return time.monotonic() - self._last_draw >= 0.2 or step_in_epoch == epoch_steps
        every = max(1, epoch_steps // LINES_PER_EPOCH)
        return step_in_epoch % every == 0 or step_in_epoch == epoch_steps

    def step(
        self,
        *,
        epoch: int,
        step_in_epoch: int,
        epoch_steps: int,
        step: int,
        total: int,
        loss: float,
        learning_rate: float,
    ) -> None:
        """Report an optimiser step (call it when `due`)."""
        if not self.enabled:
            return
        fraction = round(epoch - 1 + step_in_epoch / max(1, epoch_steps), 4)
        if self.status is not None:
            self.status.update(epoch=fraction, step=step, total_steps=total, loss=round(loss, 6))
        if self.tty:
            self._last_draw = time.monotonic()
            done = int(BAR_WIDTH * step_in_epoch / max(1, epoch_steps))
            bar = "█" * done + "·" * (BAR_WIDTH - done)
            self.stream.write(
                f"\r\033[Kepoch {epoch} {bar} {step_in_epoch}/{epoch_steps} loss {loss:.4f}"
            )
            self.stream.flush()
            return
        self.event(
            "progress",
            epoch=fraction,
            step=step,
            totalSteps=total,
            loss=round(loss, 6),
            learningRate=learning_rate,
        )


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)
