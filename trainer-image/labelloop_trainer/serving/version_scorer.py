"""A fine-tuned model version as the prelabel chain's scorer.

The version is loaded with the trainer's own `load_version` (adapter merged into the base,
eval mode), so the server predicts with exactly the model the gate judged. A batch is
tokenised in one call, padded to its longest member, and run in one forward pass under
`torch.inference_mode`, or on ONNX Runtime where `runtime` asks for the CPU fast path
(`fast_path.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from labelloop.api.labelconfig import LabelSchema, TaskType
from labelloop_trainer.serving.chain import ClassScores, Scores, SpanScores, TextInput
from labelloop_trainer.serving.fast_path import choose_forward
from labelloop_trainer.training.output import LoadedVersion, load_version


class VersionScorer:
    """Scores texts with one immutable model version."""

    def __init__(self, loaded: LoadedVersion, model_version: str, runtime: str = "torch") -> None:
        self._loaded = loaded
        self._version = model_version
        label_map = loaded.label_map
        self._task_type = TaskType(label_map["taskType"])
        self._labels: tuple[str, ...] = tuple(label_map["labels"])
        self._outputs: tuple[str, ...] = tuple(label_map["outputNames"])
        self._max_length = int(label_map.get("maxSequenceLength", 512))
        self._device = next(loaded.model.parameters()).device
        self._forward, self.runtime = choose_forward(
            loaded.model, "logits", self._tokenize, runtime, self._device
        )

    @classmethod
    def from_directory(
        cls,
        version_dir: Path,
        base_model_dir: Path | None = None,
        device: str | None = None,
        model_version: str | None = None,
        runtime: str = "torch",
    ) -> VersionScorer:
        """Load `version_dir`; its name is the model version unless one is given."""
        loaded = load_version(version_dir, base_model_dir, device)
        return cls(loaded, model_version or version_dir.resolve().name, runtime)

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def task_type(self) -> TaskType:
        return self._task_type

    def check(self, schema: LabelSchema) -> None:
        if schema.task_type is not self._task_type:
            raise ValueError(
                f"the project's config is {schema.task_type.value}, "
                f"but model {self._version} predicts {self._task_type.value}"
            )
        if not set(schema.labels) & set(self._labels):
            raise ValueError(
                f"none of the config's labels {list(schema.labels)} is one that model "
                f"{self._version} predicts ({list(self._labels)})"
            )

    def score(self, items: Sequence[TextInput]) -> list[Scores]:
        texts = [item.text for item in items]
        ner = self._task_type is TaskType.NER
        encoded = self._tokenize(texts, offsets=ner)
        offsets = encoded.pop("offset_mapping") if ner else None
        logits = self._forward(encoded)
        if self._task_type is TaskType.SINGLE_LABEL:
            rows = logits.softmax(-1).tolist()
            return [ClassScores(dict(zip(self._labels, r, strict=True))) for r in rows]
        if self._task_type is TaskType.MULTI_LABEL:
            rows = logits.sigmoid().tolist()
            return [ClassScores(dict(zip(self._labels, r, strict=True))) for r in rows]
        assert offsets is not None
        top, tags = logits.softmax(-1).max(-1)
        mask = encoded["attention_mask"].bool()
        return [self._spans(tags[i], top[i], offsets[i], mask[i]) for i in range(len(texts))]

    def _tokenize(self, texts: Sequence[str], offsets: bool = False) -> dict[str, torch.Tensor]:
        encoded = self._loaded.tokenizer(
            list(texts),
            truncation=True,
            max_length=self._max_length,
            padding=True,
            return_tensors="pt",
            return_offsets_mapping=offsets,
        )
        return {k: v if k == "offset_mapping" else v.to(self._device) for k, v in encoded.items()}

    def _spans(
        self, tags: torch.Tensor, top: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor
    ) -> SpanScores:
        """BIO tags per token → character spans; an I- tag continuing another label opens one.

        Special and padding tokens (empty offsets, or masked) are skipped, so the confidence
        is the mean over the text's own tokens.
        """
        spans: list[tuple[int, int, str]] = []
        probabilities: list[float] = []
        open_label: str | None = None
        for tag, probability, (start, end), real in zip(
            tags.tolist(), top.tolist(), offsets.tolist(), mask.tolist(), strict=True
        ):
            if not real or start == end:
                continue
            probabilities.append(probability)
            name = self._outputs[tag]
            if name == "O":
                open_label = None
                continue
            prefix, label = name.split("-", 1)
            if prefix == "I" and label == open_label and spans:
                spans[-1] = (spans[-1][0], end, label)
            else:
                spans.append((start, end, label))
                open_label = label
        confidence = sum(probabilities) / len(probabilities) if probabilities else 0.0
        return SpanScores(tuple(spans), confidence)
