"""The prelabel chain: Label Studio task → model scores → Label Studio prediction.

The model sits inside a LangChain runnable sequence of three steps — input formatting (the
task's text, found through the project's label config), the model, and an output parser
that writes Label Studio result JSON — so that other steps (a cache, a second model, a
rule) can be composed around it without touching the server. Each step implements `batch`
as one call over the whole list: LangChain's default `batch` would run the items one by one
in a thread pool, which is exactly the one-forward-pass-per-task pattern the server's
dynamic batching exists to avoid.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from langchain_core.runnables import Runnable, RunnableConfig

from labelloop.api.labelconfig import LabelSchema, Span, TaskType, build_result

In = TypeVar("In")
Out = TypeVar("Out")

MULTI_LABEL_THRESHOLD = 0.5


class TaskError(ValueError):
    """A task the chain cannot read; `field` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class TaskInput:
    """One Label Studio task (the full task dict it sends) and its project's label schema."""

    task: Mapping[str, Any]
    schema: LabelSchema


@dataclass(frozen=True)
class TextInput:
    """The text to score and the schema its prediction must follow."""

    text: str
    schema: LabelSchema


@dataclass(frozen=True)
class ClassScores:
    """A probability per label (single-label: they sum to one; multi-label: each on its own)."""

    probabilities: Mapping[str, float]


@dataclass(frozen=True)
class SpanScores:
    """Entity spans found in the text, and the mean top-token probability as confidence."""

    spans: tuple[tuple[int, int, str], ...]
    confidence: float


Scores = ClassScores | SpanScores


@dataclass(frozen=True)
class Scored:
    """A text input with its model scores."""

    item: TextInput
    scores: Scores


class Scorer(Protocol):
    """A model behind the chain: one call scores a whole batch of texts."""

    @property
    def model_version(self) -> str:
        """The version name that goes on every prediction."""

    @property
    def task_type(self) -> TaskType:
        """The kind of label config this model predicts for."""

    def check(self, schema: LabelSchema) -> None:
        """Raise `ValueError` (its message is shown to the caller) if `schema` cannot be served."""

    def score(self, items: Sequence[TextInput]) -> list[Scores]:
        """Scores for every item, in order."""


class ListStep(Runnable[In, Out], Generic[In, Out]):
    """A runnable whose `batch` is one call of `func` over the whole list."""

    def __init__(self, name: str, func: Callable[[list[In]], list[Out]]) -> None:
        self.name = name
        self._func = func

    def invoke(self, input: In, config: RunnableConfig | None = None, **kwargs: Any) -> Out:
        return self._call_with_config(lambda x: self._func([x])[0], input, config)

    def batch(
        self,
        inputs: list[In],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Out]:
        return self._batch_with_config(
            self._outputs, inputs, config, return_exceptions=return_exceptions
        )

    def _outputs(self, inputs: list[In]) -> list[Exception | Out]:
        return list[Exception | Out](self._func(inputs))


def task_text(task: Mapping[str, Any], schema: LabelSchema, where: str = "task") -> str:
    """The text the label config's `<Text value="$key">` reads from the task's `data`."""
    if not isinstance(task, Mapping):
        raise TaskError(where, "must be a JSON object")
    data = task.get("data")
    if not isinstance(data, Mapping):
        raise TaskError(f"{where}.data", "must be a JSON object holding the task's fields")
    text = data.get(schema.data_key)
    if text is None:
        raise TaskError(
            f"{where}.data.{schema.data_key}",
            f"missing: the label config's <Text name={schema.to_name!r}> reads "
            f"${schema.data_key}; the task has {sorted(map(str, data))}",
        )
    if not isinstance(text, str):
        raise TaskError(
            f"{where}.data.{schema.data_key}", f"must be a string, not {type(text).__name__}"
        )
    return text


def to_prediction(scored: Scored, model_version: str) -> dict[str, Any]:
    """Label Studio's prediction for one task: `{result, score, model_version}`, and for
    classification `probabilities` (every label's), which active learning's margin and entropy
    strategies rank by; Label Studio ignores the extra key.

    Labels the model knows but the project's config no longer lists are left out, so that
    every prediction validates against the config it was asked for. Scores: single-label, the
    chosen label's probability; multi-label, the mean certainty `max(p, 1 - p)` over the
    labels (a set of confident yes/no decisions scores high); NER, the mean top probability of
    the tokens. All lie in [0, 1], so uncertainty sampling can order tasks by them.
    """
    schema, scores = scored.item.schema, scored.scores
    if isinstance(scores, SpanScores):
        text = scored.item.text
        spans = [
            Span(start, end, text[start:end], label)
            for start, end, label in scores.spans
            if label in schema.labels
        ]
        return _prediction(build_result(schema, spans), scores.confidence, model_version)
    probabilities = {k: v for k, v in scores.probabilities.items() if k in schema.labels}
    if schema.task_type is TaskType.MULTI_LABEL:
        chosen = [k for k in schema.labels if probabilities.get(k, 0.0) > MULTI_LABEL_THRESHOLD]
        certainty = statistics.fmean(max(p, 1.0 - p) for p in probabilities.values())
        prediction = _prediction(build_result(schema, chosen), certainty, model_version)
    else:
        best = max(probabilities, key=probabilities.__getitem__)
        score = probabilities[best]
        prediction = _prediction(build_result(schema, [best], score), score, model_version)
    prediction["probabilities"] = {k: float(v) for k, v in probabilities.items()}
    return prediction


def _prediction(result: list[dict[str, Any]], score: float, version: str) -> dict[str, Any]:
    return {"result": result, "score": float(score), "model_version": version}


def build_chain(scorer: Scorer) -> Runnable[TaskInput, dict[str, Any]]:
    """format (task → text) | model (texts → scores, one call) | parse (→ Label Studio JSON)."""

    def format_inputs(items: list[TaskInput]) -> list[TextInput]:
        return [TextInput(task_text(i.task, i.schema), i.schema) for i in items]

    def run_model(items: list[TextInput]) -> list[Scored]:
        return [Scored(i, s) for i, s in zip(items, scorer.score(items), strict=True)]

    def parse_outputs(items: list[Scored]) -> list[dict[str, Any]]:
        return [to_prediction(i, scorer.model_version) for i in items]

    return (
        ListStep("format_task", format_inputs)
        | ListStep("model", run_model)
        | ListStep("to_label_studio", parse_outputs)
    )
