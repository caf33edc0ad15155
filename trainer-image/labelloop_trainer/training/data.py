"""Reading, cleaning and splitting labelled examples (no tokenizer, no torch).

Annotation exports are messy: blank texts, the same sentence twice, labels outside the
project's label set, rows without the expected fields. Rather than failing on the first bad
row or silently training on it, every row is either kept or dropped for a named reason, and
the counts travel with the model (`dataset.json`) so that a surprising model can be traced
back to its data. The run fails (exit 2) only when nothing usable is left or the fields are
wrong, with a message that names the field and what is allowed.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.errors import BadInputError


@dataclass(frozen=True)
class Span:
    """A labelled character range `[start, end)` of a text (NER)."""

    start: int
    end: int
    label: str


Target = str | tuple[str, ...] | tuple[Span, ...]
"""A single label, a set of labels (multi-label) or entity spans (NER)."""


@dataclass(frozen=True)
class Example:
    """One cleaned example."""

    text: str
    target: Target


@dataclass
class CleaningReport:
    """What happened to every input row."""

    total: int = 0
    kept: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    unknown_labels: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "unknownLabels": dict(self.unknown_labels.most_common()),
        }


@dataclass(frozen=True)
class Dataset:
    """Cleaned examples, their label set and the cleaning report."""

    examples: tuple[Example, ...]
    labels: tuple[str, ...]
    report: CleaningReport


# --- reading -----------------------------------------------------------------------------


def read_rows(path: Path) -> tuple[list[Any], int]:
    """The rows of a JSON (a list), JSONL or CSV file, and how many lines were unreadable."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise BadInputError(f"data: {path} does not exist") from err
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"data: cannot read {path} as UTF-8 text: {err}") from err
    if not raw.strip():
        raise BadInputError(f"data: {path} is empty")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return list(csv.DictReader(raw.splitlines())), 0
    if suffix in (".jsonl", ".ndjson"):
        return _json_lines(raw)
    try:
        document = json.loads(raw)
    except json.JSONDecodeError:
        if suffix == ".json":
            raise BadInputError(f"data: {path} is not valid JSON") from None
        return _json_lines(raw)
    if not isinstance(document, list):
        raise BadInputError(f"data: {path} must hold a JSON list of objects")
    return document, 0


def _json_lines(raw: str) -> tuple[list[Any], int]:
    rows: list[Any] = []
    malformed = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            malformed += 1
    return rows, malformed


# --- cleaning ----------------------------------------------------------------------------


def load_dataset(
    path: Path,
    text_field: str,
    label_field: str,
    task_type: TaskType,
    labels: Sequence[str] | None = None,
) -> Dataset:
    """Read and clean a file; see `clean`."""
    rows, malformed = read_rows(path)
    dataset = clean(rows, text_field, label_field, task_type, labels)
    if malformed:
        dataset.report.total += malformed
        dataset.report.dropped["malformed"] += malformed
    return dataset


def clean(
    rows: Sequence[Any],
    text_field: str,
    label_field: str,
    task_type: TaskType,
    labels: Sequence[str] | None = None,
) -> Dataset:
    """Keep the usable rows, count the others by reason, and settle the label set.

    Texts are NFC-normalised with runs of whitespace collapsed (NER texts are kept as they
    are, since the span offsets point into them). A text seen before is a duplicate, whatever
    its label. With `labels` given, a row using any other label is dropped as
    `unknown_label`; without, the label set is what the data uses, sorted.
    """
    _check_fields(rows, text_field, label_field)
    allowed = None if labels is None else set(labels)
    report = CleaningReport(total=len(rows))
    seen: set[str] = set()
    examples: list[Example] = []
    for row in rows:
        reason, example = _clean_row(row, text_field, label_field, task_type)
        if example is not None and allowed is not None:
            unknown = sorted(set(_labels_of(example.target)) - allowed)
            if unknown:
                report.unknown_labels.update(unknown)
                reason, example = "unknown_label", None
        if example is not None and example.text in seen:
            reason, example = "duplicate", None
        if example is None:
            report.dropped[reason] += 1
            continue
        seen.add(example.text)
        examples.append(example)
    report.kept = len(examples)
    label_set = tuple(labels) if labels is not None else _observed(examples)
    _check_usable(
        examples,
        label_set,
        report,
        label_field=label_field,
        task_type=task_type,
        given=labels is not None,
    )
    return Dataset(tuple(_ordered(e, label_set) for e in examples), label_set, report)


def _check_fields(rows: Sequence[Any], text_field: str, label_field: str) -> None:
    objects = [r for r in rows if isinstance(r, dict)]
    if not objects:
        raise BadInputError("data: no rows are JSON objects (or CSV records with a header)")
    present = {k for r in objects for k in r}
    for flag, name in (("text field", text_field), ("label field", label_field)):
        if name not in present:
            shown = ", ".join(sorted(map(str, present))[:20])
            raise BadInputError(
                f"data: no row has the {flag} {name!r}; the rows have the fields: {shown}"
            )


def _clean_row(
    row: Any, text_field: str, label_field: str, task_type: TaskType
) -> tuple[str, Example | None]:
    if not isinstance(row, dict):
        return "malformed", None
    text = row.get(text_field)
    if not isinstance(text, str):
        return "missing_text", None
    if task_type is not TaskType.NER:
        text = " ".join(unicodedata.normalize("NFC", text).split())
    if not text.strip():
        return "empty_text", None
    raw = row.get(label_field)
    if raw is None or raw == "":
        return "missing_label", None
    target: Target | None
    if task_type is TaskType.SINGLE_LABEL:
        target = _single(raw)
    elif task_type is TaskType.MULTI_LABEL:
        target = _multi(raw)
    else:
        spans = _spans(raw, len(text))
        if spans is None:
            return "invalid_spans", None
        target = spans
    if target is None:
        return "invalid_label", None
    return "", Example(text, target)


def _single(raw: Any) -> str | None:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    label = str(raw).strip()
    return label or None


def _multi(raw: Any) -> tuple[str, ...] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = raw.split(",")
    if not isinstance(raw, list):
        return None
    labels = [_single(v) for v in raw]
    if any(label is None for label in labels):
        return None
    return tuple(dict.fromkeys(label for label in labels if label is not None))


def _spans(raw: Any, length: int) -> tuple[Span, ...] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            return None
    if not isinstance(raw, list):
        return None
    spans = []
    for item in raw:
        if not isinstance(item, dict):
            return None
        start, end, label = item.get("start"), item.get("end"), _single(item.get("label"))
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= length):
            return None
        if label is None:
            return None
        spans.append(Span(start, end, label))
    spans.sort(key=lambda s: (s.start, s.end))
    if any(a.end > b.start for a, b in itertools.pairwise(spans)):
        return None
    return tuple(spans)


def _labels_of(target: Target) -> list[str]:
    if isinstance(target, str):
        return [target]
    return [t.label if isinstance(t, Span) else t for t in target]


def _observed(examples: Iterable[Example]) -> tuple[str, ...]:
    return tuple(sorted({label for e in examples for label in _labels_of(e.target)}))


def _ordered(example: Example, labels: Sequence[str]) -> Example:
    """Multi-label sets in label-set order, so equal sets hash equally."""
    target = example.target
    if isinstance(target, tuple) and not any(isinstance(t, Span) for t in target):
        rank = {label: i for i, label in enumerate(labels)}
        names = [t for t in target if isinstance(t, str)]
        return Example(example.text, tuple(sorted(names, key=rank.__getitem__)))
    return example


def _check_usable(
    examples: Sequence[Example],
    labels: Sequence[str],
    report: CleaningReport,
    *,
    label_field: str,
    task_type: TaskType,
    given: bool,
) -> None:
    if not examples:
        drops = ", ".join(f"{n} {reason}" for reason, n in report.dropped.most_common())
        message = f"data: none of the {report.total} rows is usable ({drops})"
        if report.unknown_labels:
            found = ", ".join(sorted(report.unknown_labels))
            message += (
                f"; field {label_field!r} has the values {found}, "
                f"but only {', '.join(labels)} are allowed"
            )
        raise BadInputError(message)
    if task_type is TaskType.SINGLE_LABEL and len(set(_observed(examples))) < 2:
        raise BadInputError(
            f"data: field {label_field!r} must hold at least two different labels, "
            f"found only {list(_observed(examples))}"
            + (f" (allowed: {', '.join(labels)})" if given else "")
        )


# --- split and manifest ------------------------------------------------------------------


def held_out_split(
    examples: Sequence[Example], eval_share: float, seed: int
) -> tuple[list[int], list[int]]:
    """Train and eval indices; an example's side is decided by its text and the seed alone.

    Why not a shuffle: every round trains on all annotations so far, and the promotion gate
    scores the serving version on the new version's held-out annotations. A shuffle of the
    grown data would hold out annotations that the serving version trained on, flattering it
    (in `make demo`, where round 1's version served until round 3: two fifths of round 2's
    held-out annotations and a quarter of round 3's, in expectation). Decided by the text, an
    annotation held out once stays held out as the data grows, and the gate compares versions
    on annotations neither saw.

    An example is held out when the hash of seed and text falls below `eval_share`, so each
    class (first label; NER: one class) is split alike in expectation. A class with at least
    two examples keeps both sides: its lowest-hashed example is held out when none is, its
    highest-hashed one trained on when none is; so rare classes are evaluated too. A class of
    one example is trained on.
    """
    by_class: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        by_class.setdefault(_stratum(example.target), []).append(i)
    draw = [_uniform(seed, example.text) for example in examples]
    train: list[int] = []
    held: list[int] = []
    for members in by_class.values():
        members.sort(key=draw.__getitem__)
        below = sum(1 for i in members if draw[i] < eval_share)
        n_held = min(max(below, 1), len(members) - 1)
        held.extend(members[:n_held])
        train.extend(members[n_held:])
    if not train or not held:
        raise BadInputError(
            f"data: {len(examples)} usable rows are too few to hold out an evaluation split"
        )
    return sorted(train), sorted(held)


def _uniform(seed: int, text: str) -> float:
    """A number in [0, 1) fixed by `seed` and `text`."""
    digest = hashlib.sha256(f"{seed}\n{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _stratum(target: Target) -> str:
    if isinstance(target, str):
        return target
    first = target[0] if target else ""
    return first if isinstance(first, str) else ""


def content_hash(examples: Iterable[Example]) -> str:
    """`sha256:<hex>` of the cleaned examples in order (text and target, canonical JSON)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.text, _target_json(example.target)]).encode())
        digest.update(b"\n")
    return f"sha256:{digest.hexdigest()}"


def _target_json(target: Target) -> Any:
    if isinstance(target, str):
        return target
    return [
        {"start": t.start, "end": t.end, "label": t.label} if isinstance(t, Span) else t
        for t in target
    ]


def manifest(
    dataset: Dataset,
    source: Path | Mapping[str, Any],
    train: Sequence[int],
    held: Sequence[int],
) -> dict[str, Any]:
    """The dataset manifest written next to the model (`dataset.json`).

    `source` is the file read, or where the trainer got it from (a Label Studio project).
    """
    counts = Counter(label for e in dataset.examples for label in _labels_of(e.target))
    return {
        "source": str(source) if isinstance(source, Path) else dict(source),
        "count": len(dataset.examples),
        "trainCount": len(train),
        "evalCount": len(held),
        "labels": list(dataset.labels),
        "labelCounts": {label: counts.get(label, 0) for label in dataset.labels},
        "hash": content_hash(dataset.examples),
        "cleaning": dataset.report.to_json(),
    }
