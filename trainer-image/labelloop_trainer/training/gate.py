"""The promotion gate: may this version be rolled out?

The trainer, which has the fresh metrics at hand, judges the gate and writes the verdict with
the results, so the operator only reads `promotion.passed` and never recomputes a metric. A
version that fails the gate is still written (it is a real, inspectable model); it is only
not promoted.

`mustImprove` compares like with like: the serving version is scored on the very annotations
the new version was evaluated on (`incumbent.py`; before any version serves, the base
model's zero-shot guess), and the new version must score higher there. When nothing can be
compared (no serving version on a task without a zero-shot guess, or one with other labels)
the clause passes and the verdict says why. Gate metrics rise as models improve; were a loss
named, `minimum` would be the bound it must stay under.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labelloop_trainer.training.incumbent import Incumbent
from labelloop_trainer.training.scores import canonical, higher_is_better
from labelloop_trainer.training.settings import Promotion


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, a sentence saying why, and both scores compared."""

    passed: bool
    reason: str
    metric: str | None = None
    candidate_score: float | None = None
    serving_score: float | None = None
    serving_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The verdict as JSON-ready data, in the API's names (`PromotionVerdict`)."""
        found = {
            "passed": self.passed,
            "reason": self.reason,
            "metric": self.metric,
            "candidateScore": _rounded(self.candidate_score),
            "servingScore": _rounded(self.serving_score),
            "servingVersion": self.serving_version,
        }
        return {k: v for k, v in found.items() if v is not None}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def judge(
    gate: Promotion | None,
    metrics: Mapping[str, float],
    serving: Incumbent | None = None,
) -> Verdict:
    """Apply `gate` to `metrics`; `serving` is the serving version scored on the same
    held-out annotations, if there is one."""
    if gate is None:
        return Verdict(True, "no promotion gate")
    name = canonical(gate.metric)
    if name not in metrics:
        return Verdict(False, f"{name} was not computed (have: {', '.join(sorted(metrics))})")
    value = metrics[name]
    up = higher_is_better(name)
    meets = value >= gate.minimum if up else value <= gate.minimum
    reasons = [
        f"{name} {value:.4f} {('≥' if up else '≤') if meets else ('<' if up else '>')} "
        f"{gate.minimum:.4f}"
    ]
    before = None if serving is None or serving.metrics is None else serving.metrics.get(name)
    improves = True
    if gate.must_improve:
        if serving is None:
            reasons.append("nothing serves to improve on")
        elif before is None:
            reasons.append(serving.note or f"{name} of {serving.version} was not computed")
        else:
            improves = value > before if up else value < before
            verb = "improves on" if improves else "does not improve on"
            reasons.append(f"{verb} {serving.version}'s {before:.4f} on the same annotations")
    return Verdict(
        meets and improves,
        "; ".join(reasons),
        metric=name,
        candidate_score=value,
        serving_score=before,
        serving_version=None if serving is None else serving.version,
    )
