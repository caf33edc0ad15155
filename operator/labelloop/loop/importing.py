"""Reading `spec.data` into task rows, and deciding which rows still need importing.

Label Studio's open-source edition keeps no idea of "this row was imported before", so each row
gets a stable key — a hash of its canonical JSON — that travels in the task's `meta`. Re-running
an import compares keys, never counts, so a crash between import and status write, a second
reconcile at the same time or an edited source never brings a task in twice. Two identical rows
are one task: they would train the same example twice.

A malformed row (not an object, unparsable, lacking the field the label config reads) is
counted and described, never fatal: one bad line must not hold back a thousand good ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["json", "jsonl", "csv"]

# The key of a row's stable identity in the task's meta.
KEY_FIELD = "labelloop_key"
# How many problems are spelt out; the count covers the rest.
MAX_PROBLEMS = 5
_SUFFIXES: tuple[tuple[str, Format], ...] = (
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "json"),
    (".csv", "csv"),
)


@dataclass(frozen=True)
class ParsedRows:
    """Rows read from a source: good task data objects, and what was wrong with the others."""

    rows: tuple[dict[str, Any], ...]
    malformed: int = 0
    problems: tuple[str, ...] = field(default=())


def guess_format(name: str, content_type: str | None = None, text: str = "") -> Format:
    """The format from a file name's extension, then the content type, then the text itself."""
    lowered = name.lower().split("?", 1)[0]
    for suffix, fmt in _SUFFIXES:
        if lowered.endswith(suffix):
            return fmt
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        return "jsonl"
    if kind == "application/json":
        return "json"
    if kind in ("text/csv", "application/csv"):
        return "csv"
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        # One object per line, or one object holding everything.
        return "jsonl" if "\n" in stripped.rstrip() else "json"
    return "csv"


def parse_rows(text: str, fmt: Format, data_key: str) -> ParsedRows:
    """Rows of `text` in `fmt`; each must be an object with the field `data_key`."""
    candidates: list[tuple[str, object]]
    if fmt == "json":
        try:
            document = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            return ParsedRows((), 1, (f"not valid JSON: {exc}",))
        items = document if isinstance(document, list) else [document]
        candidates = [(f"item {i + 1}", item) for i, item in enumerate(items)]
    elif fmt == "jsonl":
        candidates = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                candidates.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as exc:
                candidates.append((f"line {number}", _Unparsable(str(exc))))
    else:
        reader = csv.DictReader(io.StringIO(text))
        candidates = []
        for number, record in enumerate(reader, start=2):  # line 1 is the header
            if None in record or any(v is None for v in record.values()):
                candidates.append((f"line {number}", _Unparsable("wrong number of columns")))
            else:
                candidates.append((f"line {number}", dict(record)))
    return check_rows(candidates, data_key)


def check_rows(candidates: Iterable[tuple[str, object]], data_key: str) -> ParsedRows:
    """Keep the objects that hold `data_key`; count and describe the rest."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    malformed = 0
    for where, item in candidates:
        problem = _problem(item, data_key)
        if problem is None:
            assert isinstance(item, dict)
            rows.append(_task_data(item))
            continue
        malformed += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(f"{where}: {problem}")
    return ParsedRows(tuple(rows), malformed, tuple(problems))


def row_key(data: Mapping[str, Any]) -> str:
    """The stable key of one row: the same data gives the same key on every run."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def tasks_to_import(
    rows: Sequence[Mapping[str, Any]], existing_keys: Iterable[str]
) -> list[dict[str, Any]]:
    """Label Studio import payloads for the rows whose key is not in the project yet.

    Each payload carries its key in `meta`, where labelloop reads it back next time.
    """
    seen = set(existing_keys)
    payloads = []
    for data in rows:
        key = row_key(data)
        if key in seen:
            continue
        seen.add(key)
        payloads.append({"data": dict(data), "meta": {KEY_FIELD: key}})
    return payloads


def describe(parsed: ParsedRows) -> str | None:
    """A message for a person about the malformed rows, or None when there were none."""
    if not parsed.malformed:
        return None
    shown = "; ".join(parsed.problems)
    more = parsed.malformed - len(parsed.problems)
    return f"{parsed.malformed} malformed row(s) skipped: {shown}" + (
        f"; and {more} more" if more > 0 else ""
    )


@dataclass(frozen=True)
class _Unparsable:
    reason: str


def _problem(item: object, data_key: str) -> str | None:
    if isinstance(item, _Unparsable):
        return item.reason
    if not isinstance(item, dict):
        return f"expected an object, got {type(item).__name__}"
    data = _task_data(item)
    value = data.get(data_key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"no {data_key!r} field (the label config reads ${data_key})"
    return None


def _task_data(item: dict[str, Any]) -> dict[str, Any]:
    """Label Studio accepts a task as its data or wrapped as {"data": {...}}; rows may be either."""
    inner = item.get("data")
    if isinstance(inner, dict) and len(item) == 1:
        return dict(inner)
    return dict(item)
