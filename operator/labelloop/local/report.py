"""The demo's round table, and its report: report.json, report.md and accuracy.png."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COLUMNS = (
    ("round", 5),
    ("labels", 6),
    ("model version", 30),
    ("eval macro-F1", 13),
    ("serving F1", 10),
    ("gate", 7),
    ("prelabel acc.", 13),
    ("accepted", 8),
    ("kappa", 6),
    ("relabel", 7),
)


@dataclass
class RoundRow:
    """One round: the version serving after it, and what was measured of it."""

    round: int
    labels: int
    """Annotations the round's version trained on (its cut-off): 0 for the zero-shot round."""
    model_version: str
    eval_macro_f1: float | None
    """Macro-F1 on the round's held-out split, from the trainer's result."""
    prelabel_accuracy: float | None
    """Share of the serving version's prelabels of the unlabelled tasks equal to gold."""
    unlabelled: int
    gate: bool | None = None
    serving_score: float | None = None
    """The gate's score of the version serving before the round, on the same held-out
    annotations as `eval_macro_f1` (the zero-shot prelabeler's in round 1)."""
    accepted: float | None = None
    """Share of its prelabels the next batch's annotators kept unchanged."""
    train_seconds: float | None = None
    round_seconds: float | None = None
    annotate_seconds: float | None = None
    agreement: float | None = None
    """Kappa between this version's labels of the unlabelled tasks and the previous one's."""
    stable: bool = False
    """The stopping rule: further labels are changing few predictions."""
    relabel_suspects: int | None = None
    """Labelled tasks a confident prelabel contradicts or whose annotators split."""

    @staticmethod
    def header() -> str:
        names = " | ".join(f"{name:<{width}}" for name, width in COLUMNS)
        return f"| {names} |\n|" + "|".join("-" * (w + 2) for _, w in COLUMNS) + "|"

    def cells(self) -> tuple[str, ...]:
        return (
            str(self.round),
            str(self.labels),
            self.model_version,
            _share(self.eval_macro_f1),
            _share(self.serving_score),
            "—" if self.gate is None else ("passed" if self.gate else "refused"),
            _share(self.prelabel_accuracy),
            _share(self.accepted),
            _share(self.agreement) + ("*" if self.stable else ""),
            "—" if self.relabel_suspects is None else str(self.relabel_suspects),
        )

    def line(self) -> str:
        values = (f"{v:<{w}}" for v, (_, w) in zip(self.cells(), COLUMNS, strict=True))
        return "| " + " | ".join(values) + " |"

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "labels": self.labels,
            "modelVersion": self.model_version,
            "evalMacroF1": _rounded(self.eval_macro_f1),
            "prelabelAccuracy": _rounded(self.prelabel_accuracy),
            "accepted": _rounded(self.accepted),
            "unlabelledTasks": self.unlabelled,
            "gatePassed": self.gate,
            "gateServingScore": _rounded(self.serving_score),
            "predictionAgreement": _rounded(self.agreement),
            "stable": self.stable,
            "relabelSuspects": self.relabel_suspects,
            "trainSeconds": self.train_seconds,
            "roundSeconds": self.round_seconds,
            "annotateSeconds": self.annotate_seconds,
        }


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def write_report(report: dict[str, Any], rows: list[RoundRow], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (directory / "report.md").write_text(_markdown(report, rows))
    _plot(rows, directory / "accuracy.png")


def _markdown(report: dict[str, Any], rows: list[RoundRow]) -> str:
    dataset, timings = report["dataset"], report["timings"]
    lines = [
        "# labelloop demo",
        "",
        f"{dataset['tasks']} tasks from `{dataset['path']}`"
        + (f" ({dataset['attribution']})" if dataset.get("attribution") else "")
        + ".",
        "",
        "Each round: a batch of annotations through the Label Studio API (the serving "
        "version's queue in active-learning order; round 0's a random sample), a LoRA "
        "fine-tune on every annotation so far, the promotion gate, the rollout, and prelabels "
        "for the remaining tasks. *eval macro-F1*: the round's version on its held-out "
        "annotations; *serving F1*: the version serving before it on the same annotations "
        "(zero-shot in round 1), which it must beat to pass the *gate*; *prelabel acc.*: the "
        "serving version's prelabels of the not-yet-labelled tasks against the gold labels; "
        "*accepted*: the share of its prelabels the next batch's annotators kept unchanged "
        "(that batch is the version's least confident tasks, so this share is lower than its "
        "accuracy on the rest); *kappa*: its labels of the unlabelled tasks against the "
        "previous version's (* once the stopping rule says further labels change few "
        "predictions); *relabel*: labelled tasks a confident prelabel contradicts or whose "
        "annotators split.",
        "",
        RoundRow.header(),
        *(r.line() for r in rows),
        "",
        f"Label Studio started in {timings['labelStudioStartSeconds']:.0f} s; "
        f"the whole demo took {timings['totalSeconds']:.0f} s.",
        "",
        "![prelabel accuracy against labels used](accuracy.png)",
        "",
    ]
    return "\n".join(lines)


def _plot(rows: list[RoundRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    points = [(r.labels, r.prelabel_accuracy) for r in rows if r.prelabel_accuracy is not None]
    axes.plot(*zip(*points, strict=True), marker="o", label="prelabel accuracy (unlabelled)")
    f1 = [(r.labels, r.eval_macro_f1) for r in rows if r.eval_macro_f1 is not None]
    if f1:
        axes.plot(*zip(*f1, strict=True), marker="s", linestyle="--", label="eval macro-F1")
    axes.set_xlabel("labels used")
    axes.set_ylabel("score")
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
