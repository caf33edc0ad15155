"""The promotion gate: may this version be rolled out?

The trainer, which has the fresh metrics at hand, judges the gate and writes the verdict with
the results, so the operator only reads `promotion.passed` and never recomputes a metric. A
version that fails the gate is still written (it is a real, inspectable model); it is only
not promoted. `mustImprove` without a previous version passes: the first version has
nothing to beat. Gate metrics rise as models improve; were a loss named, `minimum` would be
the bound it must stay under.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training.scores import canonical, higher_is_better
from labelloop_trainer.training.settings import Promotion


@dataclass(frozen=True)
class Verdict:
    """The gate's decision and a sentence saying why."""

    passed: bool
    reason: str

    def to_json(self) -> dict[str, bool | str]:
        """The verdict as JSON-ready data."""
        return {"passed": self.passed, "reason": self.reason}


def judge(
    gate: Promotion | None,
    metrics: Mapping[str, float],
    previous: Mapping[str, float] | None = None,
) -> Verdict:
    """Apply `gate` to `metrics`; `previous` is the active version's metrics, if any."""
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
    improves = True
    if gate.must_improve:
        before = None if previous is None else previous.get(name)
        if before is None:
            reasons.append("no previous version to improve on")
        else:
            improves = value > before if up else value < before
            verb = "improves on" if improves else "does not improve on"
            reasons.append(f"{verb} the previous {before:.4f}")
    return Verdict(meets and improves, "; ".join(reasons))


def previous_metrics(version_dir: Path | None) -> dict[str, float] | None:
    """The scalar metrics of a version directory's `metrics.json` (None without a version)."""
    if version_dir is None:
        return None
    path = version_dir / "metrics.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"previous version: cannot read {path}: {err}") from err
    values = document.get("metrics", document) if isinstance(document, dict) else {}
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
