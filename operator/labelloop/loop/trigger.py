"""When a training round starts, and what its FineTuneJob is called.

Exactly-once rests on two facts rather than on remembering events:

- The round number is derived from the FineTuneJobs that exist (the highest round found, or the
  one recorded in status, whichever is higher), so a restart or a lost status write never
  forgets a round.
- A round's FineTuneJob name is a pure function of the project and the round, and it is only
  ever created if absent, so two reconciles that both decide to start round N make one job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..resources.common import child_name


@dataclass(frozen=True)
class RoundState:
    """What is known of past rounds."""

    rounds: int
    """Rounds started so far."""
    cutoff: int
    """Newest annotation id included in the latest round (0 before the first)."""
    last_started: datetime | None
    """When the latest round started."""
    last_job: str | None = None
    """FineTuneJob of the latest round, where one was found."""


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str
    wait_seconds: int | None = None
    """Held back only by `minIntervalSeconds`: when the round may start, from now."""


def round_job_name(project: str, round_: int) -> str:
    """The FineTuneJob of round `round_` of `project`, e.g. `reviews-r3`."""
    return child_name(project, f"r{round_}")


def decide(
    since_last_training: int,
    new_annotations: int,
    min_interval_seconds: int,
    state: RoundState,
    now: datetime,
) -> Decision:
    """Whether round `state.rounds + 1` starts now."""
    if since_last_training < new_annotations:
        return Decision(
            False, f"{since_last_training}/{new_annotations} new annotations for the next round"
        )
    if state.last_started is not None and min_interval_seconds:
        ready_at = state.last_started + timedelta(seconds=min_interval_seconds)
        if now < ready_at:
            wait = int((ready_at - now).total_seconds()) + 1
            return Decision(
                False,
                f"enough new annotations; minIntervalSeconds allows the next round in {wait}s",
                wait_seconds=wait,
            )
    return Decision(True, f"{since_last_training} new annotations reached {new_annotations}")
