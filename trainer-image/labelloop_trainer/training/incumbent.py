"""The version serving now, scored on the new version's held-out annotations.

`promotion.mustImprove` asks whether the new version is better than the one annotators get
their prelabels from. Each version's own evaluation answers a different question: the
splits differ from round to round (a few dozen crowd labels each, early on), and the
zero-shot prelabeler of round 0 has no evaluation at all. So the gate scores the serving
version here, on exactly the annotations the new version was evaluated on, and compares the
two numbers:

- `previousVersionDir` set: that version, loaded as the prelabel server loads it;
- unset, on a single-label task: the base model's zero-shot guess (`zeroshot.py`), what the
  local runner serves before any fine-tuned version and the floor a first version must
  clear; on other tasks there is nothing to compare with.

A serving version of another task type or label set cannot be scored on these annotations;
the comparison is then skipped, and the verdict says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training import scores
from labelloop_trainer.training.data import Example
from labelloop_trainer.training.evaluate import Predictions, score, score_version
from labelloop_trainer.training.features import Feature
from labelloop_trainer.training.output import load_version, read_label_map
from labelloop_trainer.training.zeroshot import zero_shot_labels


@dataclass(frozen=True)
class Incumbent:
    """The serving version and its metrics on the held-out annotations."""

    version: str
    """Its name: the version directory's, or `zero-shot` for the base model's guess."""
    metrics: dict[str, float] | None
    """Scalar metrics; None when it cannot be scored on these annotations (see `note`)."""
    note: str = ""


ZERO_SHOT = "zero-shot"


def check(previous_version_dir: Path | None) -> None:
    """Fail before training, not after it, when the serving version is no version."""
    if previous_version_dir is not None:
        try:
            read_label_map(previous_version_dir)
        except BadInputError as err:
            raise BadInputError(f"previousVersionDir: {err}") from err


def score_incumbent(
    previous_version_dir: Path | None,
    base_model_dir: Path,
    task_type: TaskType,
    labels: Sequence[str],
    held_out: Sequence[Example],
    *,
    plugins: Sequence[str] = (),
) -> Incumbent | None:
    """The serving version scored on `held_out`; None when nothing can be compared."""
    if previous_version_dir is not None:
        return score_version_dir(previous_version_dir, task_type, labels, held_out, plugins=plugins)
    if task_type is TaskType.SINGLE_LABEL:
        return score_zero_shot(base_model_dir, labels, held_out, plugins=plugins)
    return None


def score_version_dir(
    version_dir: Path,
    task_type: TaskType,
    labels: Sequence[str],
    held_out: Sequence[Example],
    *,
    plugins: Sequence[str] = (),
) -> Incumbent:
    """A saved version scored on `held_out`, when it predicts the same labels."""
    name = version_dir.resolve().name
    trained = read_label_map(version_dir)
    if TaskType(trained["taskType"]) is not task_type or set(trained["labels"]) != set(labels):
        return Incumbent(
            name,
            None,
            f"the serving version {name} predicts other labels ({', '.join(trained['labels'])})",
        )
    found = score_version(load_version(version_dir), held_out, plugins=plugins)
    return Incumbent(name, scores.scalars(found))


def score_zero_shot(
    base_model_dir: Path,
    labels: Sequence[str],
    held_out: Sequence[Example],
    *,
    plugins: Sequence[str] = (),
) -> Incumbent:
    """The base model's zero-shot guess scored on single-label `held_out`."""
    guesses = zero_shot_labels(base_model_dir, [e.text for e in held_out], labels)
    index = {label: i for i, label in enumerate(labels)}
    gold = [Feature([], None, index[str(e.target)]) for e in held_out]
    predictions = Predictions(dict(enumerate(guesses)), None)
    found = score(TaskType.SINGLE_LABEL, labels, gold, predictions, plugins)
    return Incumbent(ZERO_SHOT, scores.scalars(found))
