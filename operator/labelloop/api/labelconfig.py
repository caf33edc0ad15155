"""Pure reading of a Label Studio label config, and of the result JSON it produces.

labelloop trains text classifiers and span taggers, so only a config with exactly one control
tag — `<Choices>` or `<Labels>` — bound to one `<Text>` object tag is supported. Everything
else is refused with a message that says what was found and what is allowed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "LabelConfigError",
    "LabelSchema",
    "Span",
    "TaskType",
    "build_result",
    "parse_label_config",
    "read_result",
]


class TaskType(StrEnum):
    SINGLE_LABEL = "single-label"
    MULTI_LABEL = "multi-label"
    NER = "ner"


@dataclass(frozen=True)
class LabelSchema:
    task_type: TaskType
    from_name: str
    to_name: str
    data_key: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Span:
    """One labelled character range of the task text; `end` is exclusive, as in Label Studio."""

    start: int
    end: int
    text: str
    label: str


class LabelConfigError(ValueError):
    """The label config is not one labelloop can train on; the message says why."""


_CHOICE_MODES = {
    "single": TaskType.SINGLE_LABEL,
    "single-radio": TaskType.SINGLE_LABEL,
    "multiple": TaskType.MULTI_LABEL,
}
_CONTROL_TAGS = {"choices": "choice", "labels": "label"}
_RESULT_TYPES = {
    TaskType.SINGLE_LABEL: "choices",
    TaskType.MULTI_LABEL: "choices",
    TaskType.NER: "labels",
}
_ALLOWED = 'one <Choices choice="single|single-radio|multiple"> or <Labels> bound to one <Text>'


def parse_label_config(xml: str) -> LabelSchema:
    """Read the one control tag of `xml` and the `<Text>` object tag it labels."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f"label config is not well-formed XML: {exc}") from exc
    if root.tag.lower() != "view":
        raise LabelConfigError(f"label config must start with <View>, found <{root.tag}>")

    # Label Studio calls every tag with a toName a control tag; labelloop supports one of them.
    controls = [element for element in root.iter() if "toName" in element.attrib]
    if len(controls) != 1:
        found = ", ".join(f"<{c.tag} name={c.get('name')!r}>" for c in controls) or "none"
        raise LabelConfigError(
            f"expected exactly one control tag, found {len(controls)} ({found}); "
            f"allowed: {_ALLOWED}"
        )
    control = controls[0]
    kind = control.tag.lower()
    if kind not in _CONTROL_TAGS:
        raise LabelConfigError(f"unsupported control tag <{control.tag}>; allowed: {_ALLOWED}")

    from_name = _required(control, "name")
    to_name = _required(control, "toName")
    target = _object_tag(root, to_name, control.tag)
    value = _required(target, "value")
    if not value.startswith("$") or len(value) < 2:
        raise LabelConfigError(
            f'<Text name="{to_name}"> must read a task field, e.g. value="$text", not {value!r}'
        )

    if kind == "labels":
        task_type = TaskType.NER
    else:
        mode = control.get("choice", "single")
        if mode not in _CHOICE_MODES:
            raise LabelConfigError(
                f'<{control.tag} name="{from_name}"> has choice="{mode}"; '
                f"allowed: {', '.join(_CHOICE_MODES)}"
            )
        task_type = _CHOICE_MODES[mode]

    return LabelSchema(
        task_type=task_type,
        from_name=from_name,
        to_name=to_name,
        data_key=value[1:],
        labels=_labels(control, _CONTROL_TAGS[kind]),
    )


def build_result(
    schema: LabelSchema, values: Sequence[str] | Sequence[Span], score: float | None = None
) -> list[dict[str, Any]]:
    """Label Studio result JSON (for an annotation or a prediction) holding `values`.

    `values` are label names for Choices and `Span`s for Labels; `score`, when given, is put on
    every region, which is where Label Studio shows a per-region confidence.
    """
    if schema.task_type is TaskType.NER:
        spans = [_as_span(v) for v in values]
        for span in spans:
            _check_label(schema, span.label)
        return [
            _region(
                schema, score, {"start": s.start, "end": s.end, "text": s.text, "labels": [s.label]}
            )
            for s in spans
        ]

    labels = [_as_label(v) for v in values]
    for label in labels:
        _check_label(schema, label)
    if schema.task_type is TaskType.SINGLE_LABEL and len(labels) > 1:
        raise ValueError(f"a single-label result holds one choice, got {labels}")
    if not labels:
        return []
    return [_region(schema, score, {"choices": labels})]


def read_result(schema: LabelSchema, result: Sequence[dict[str, Any]]) -> list[str] | list[Span]:
    """The label names (Choices) or spans (Labels) that `result` holds for `schema`'s control.

    Regions of other controls are ignored. Labels are returned as written, even ones the config
    no longer lists, so that callers can tell stale annotations apart themselves.
    """
    kind = _RESULT_TYPES[schema.task_type]
    regions = [
        r.get("value", {})
        for r in result
        if r.get("from_name") == schema.from_name
        and r.get("to_name") == schema.to_name
        and r.get("type") == kind
    ]
    if schema.task_type is not TaskType.NER:
        return [str(choice) for value in regions for choice in value.get("choices", [])]
    # Label Studio lets one region carry several labels; a span is one (range, label) pair.
    return [
        Span(
            start=int(value["start"]),
            end=int(value["end"]),
            text=str(value.get("text", "")),
            label=str(label),
        )
        for value in regions
        for label in value.get("labels", [])
    ]


def _required(element: ET.Element, attribute: str) -> str:
    value = element.get(attribute)
    if not value:
        raise LabelConfigError(f"<{element.tag}> needs a {attribute} attribute")
    return value


def _object_tag(root: ET.Element, to_name: str, control_tag: str) -> ET.Element:
    if "," in to_name:
        raise LabelConfigError(f'<{control_tag} toName="{to_name}"> must name exactly one <Text>')
    for element in root.iter():
        if element.get("name") == to_name and "toName" not in element.attrib:
            if element.tag.lower() != "text":
                raise LabelConfigError(
                    f'<{control_tag} toName="{to_name}"> points at <{element.tag}>; '
                    "only <Text> is supported"
                )
            return element
    raise LabelConfigError(f'<{control_tag} toName="{to_name}">: no <Text name="{to_name}"> found')


def _labels(control: ET.Element, child_tag: str) -> tuple[str, ...]:
    # An alias, where set, is what Label Studio writes into results instead of the value.
    labels = tuple(
        child.get("alias") or _required(child, "value")
        for child in control
        if child.tag.lower() == child_tag
    )
    if not labels:
        raise LabelConfigError(f"<{control.tag}> has no <{child_tag.capitalize()}> children")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise LabelConfigError(f"<{control.tag}> lists these labels more than once: {duplicates}")
    return labels


def _region(schema: LabelSchema, score: float | None, value: dict[str, Any]) -> dict[str, Any]:
    region: dict[str, Any] = {
        "from_name": schema.from_name,
        "to_name": schema.to_name,
        "type": _RESULT_TYPES[schema.task_type],
        "value": value,
    }
    if score is not None:
        region["score"] = score
    return region


def _check_label(schema: LabelSchema, label: str) -> None:
    if label not in schema.labels:
        raise ValueError(f"unknown label {label!r}; the config lists {list(schema.labels)}")


def _as_span(value: str | Span) -> Span:
    if not isinstance(value, Span):
        raise TypeError(f"a Labels result is built from Span values, got {value!r}")
    if not 0 <= value.start < value.end:
        raise ValueError(f"a span needs 0 <= start < end, got {value.start}..{value.end}")
    return value


def _as_label(value: str | Span) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a Choices result is built from label names, got {value!r}")
    return value
