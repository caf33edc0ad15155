"""Round 0's prelabeler: the base encoder's zero-shot guess, before any fine-tuned version.

The guess itself is `training/zeroshot.py`'s (the promotion gate scores the same guesses);
here the label scores are a softmax over the cosine similarities divided by a temperature
(`DEFAULT_TEMPERATURE`), which spreads the scores enough for uncertainty sampling to have
something to order by.

The labels come from the label config each request carries, embedded once per label set,
so one server can prelabel any single-label project. Its model version is
`zero-shot-<base model name>`, which tells its predictions apart from every fine-tuned
version and makes Label Studio ask again once a fine-tuned version replaces it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from labelloop.api.labelconfig import LabelSchema, TaskType
from labelloop_trainer.errors import BadInputError
from labelloop_trainer.serving.chain import ClassScores, Scores, TextInput
from labelloop_trainer.serving.fast_path import choose_forward
from labelloop_trainer.training.modeling import load_encoder, load_tokenizer, pooled
from labelloop_trainer.training.zeroshot import (
    DEFAULT_TEMPERATURE,
    DEFAULT_TEMPLATE,
    describe,
    tokenize,
)

GENERIC_DIR_NAMES = frozenset({"model", "base", "base-model", "base_model"})
"""Directory names that say nothing about the model; the parent's name is used instead."""


def zero_shot_version(base_model_dir: Path) -> str:
    """`zero-shot-<name>`, the name being the base model directory's (slugged)."""
    path = base_model_dir.resolve()
    name = path.parent.name if path.name.lower() in GENERIC_DIR_NAMES else path.name
    slug = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-") or "encoder"
    return f"zero-shot-{slug}"[:128]


class ZeroShotScorer:
    """Scores texts against label descriptions with a sentence encoder."""

    def __init__(
        self,
        base_model_dir: Path,
        descriptions: Mapping[str, str] | None = None,
        *,
        template: str = DEFAULT_TEMPLATE,
        temperature: float = DEFAULT_TEMPERATURE,
        device: str | None = None,
        model_version: str | None = None,
        runtime: str = "torch",
    ) -> None:
        if temperature <= 0:
            raise BadInputError(f"--zero-shot-temperature: must be positive, got {temperature}")
        self._tokenizer = load_tokenizer(base_model_dir)
        model = load_encoder(base_model_dir)
        self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        module: torch.nn.Module = model
        module.to(self._device)
        module.eval()
        self._forward, self.runtime = choose_forward(
            module, "last_hidden_state", self._tokenize, runtime, self._device
        )
        self._descriptions = dict(descriptions or {})
        self._template = template
        self._temperature = temperature
        self._version = model_version or zero_shot_version(base_model_dir)
        self._label_vectors: dict[tuple[str, ...], torch.Tensor] = {}

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def task_type(self) -> TaskType:
        return TaskType.SINGLE_LABEL

    def check(self, schema: LabelSchema) -> None:
        if schema.task_type is not TaskType.SINGLE_LABEL:
            raise ValueError(
                f"the zero-shot prelabeler serves single-label <Choices> configs only, "
                f"not {schema.task_type.value}"
            )

    def description(self, label: str) -> str:
        """What is embedded for `label`: its configured description, or its name in words."""
        return describe(label, self._descriptions, self._template)

    def score(self, items: Sequence[TextInput]) -> list[Scores]:
        """One matrix product per label set in the batch (usually one), not one per text: in
        the server every tensor operation lets the event loop's thread take the GIL, and
        getting it back can cost the model thread a switch interval (5 ms) each time."""
        texts = self.embed([item.text for item in items])
        by_labels: dict[tuple[str, ...], list[int]] = {}
        for i, item in enumerate(items):
            by_labels.setdefault(item.schema.labels, []).append(i)
        results: list[Scores] = [ClassScores({})] * len(items)
        for labels, rows in by_labels.items():
            similarities = texts[rows] @ self._labels(labels).T
            probabilities = (similarities / self._temperature).softmax(-1).tolist()
            for i, row in zip(rows, probabilities, strict=True):
                results[i] = ClassScores(dict(zip(labels, row, strict=True)))
        return results

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings, one row per text."""
        inputs = self._tokenize(texts)
        return pooled(self._forward(inputs), inputs["attention_mask"])

    def _tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return tokenize(self._tokenizer, texts, self._device)

    def _labels(self, labels: tuple[str, ...]) -> torch.Tensor:
        vectors = self._label_vectors.get(labels)
        if vectors is None:
            vectors = self.embed([self.description(label) for label in labels])
            self._label_vectors[labels] = vectors
        return vectors
