"""Cleaned examples → token ids and targets, once, before training.

Texts are tokenised a single time without padding; batches are padded later to their own
longest member (`batches.py`), which on short annotation texts saves most of the compute a
fixed-length padding would waste. NER spans become BIO tags per sub-word token through the
tokenizer's character offsets, so any fast tokenizer works, whatever its word splitting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.training.data import Example, Span

IGNORE = -100
"""Target of tokens that are not scored (special tokens), as in torch's cross-entropy."""

TargetIds = int | tuple[float, ...] | tuple[int, ...]


@dataclass(frozen=True)
class Feature:
    """One tokenised example and its target in model terms."""

    input_ids: list[int]
    token_type_ids: list[int] | None
    target: TargetIds


def output_names(task_type: TaskType, labels: Sequence[str]) -> tuple[str, ...]:
    """The model's output classes: the labels, or for NER the BIO tags of the entity types."""
    if task_type is TaskType.NER:
        return ("O", *(f"{prefix}-{label}" for label in labels for prefix in ("B", "I")))
    return tuple(labels)


def encode(
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    task_type: TaskType,
    labels: Sequence[str],
    max_length: int,
) -> list[Feature]:
    """Tokenise every example (truncated to `max_length`) and encode its target."""
    encoded = tokenizer(
        [e.text for e in examples],
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=task_type is TaskType.NER,
        return_attention_mask=False,
    )
    index = {label: i for i, label in enumerate(output_names(task_type, labels))}
    types = encoded.get("token_type_ids")
    features = []
    for i, example in enumerate(examples):
        ids: list[int] = encoded["input_ids"][i]
        target: TargetIds
        if isinstance(example.target, str):
            target = index[example.target]
        elif task_type is TaskType.MULTI_LABEL:
            chosen = set(example.target)
            target = tuple(1.0 if label in chosen else 0.0 for label in labels)
        else:
            spans = [s for s in example.target if isinstance(s, Span)]
            target = bio_tags(encoded["offset_mapping"][i], spans, index)
        features.append(Feature(ids, None if types is None else types[i], target))
    return features


def bio_tags(
    offsets: Sequence[tuple[int, int]], spans: Sequence[Span], index: dict[str, int]
) -> tuple[int, ...]:
    """BIO tag ids per token: a token overlapping a span is inside it, the first one begins it.

    Special tokens have empty offsets and get `IGNORE`.
    """
    tags = []
    open_span: Span | None = None
    for start, end in offsets:
        if start == end:
            tags.append(IGNORE)
            continue
        span = next((s for s in spans if start < s.end and s.start < end), None)
        if span is None:
            tags.append(index["O"])
        else:
            prefix = "I" if span is open_span else "B"
            tags.append(index[f"{prefix}-{span.label}"])
        open_span = span
    return tuple(tags)
