"""The base encoder's zero-shot guess: each text gets the label whose words it is closest to.

A text and each label's description are embedded by the base model (mean-pooled over the
tokens, L2-normalised, as sentence-transformers checkpoints such as all-MiniLM are trained
to be used), and the closer the cosine, the likelier the label. The prelabel server serves
these guesses as probabilities before any fine-tuned version exists (`serving/zeroshot.py`,
round 0); the promotion gate scores them on a round's held-out annotations when no version
serves yet (`incumbent.py`), so a first fine-tuned version must beat them to replace them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training.modeling import load_tokenizer

DEFAULT_TEMPLATE = "{description}"
"""How a label's description is put into a sentence before it is embedded. Bare words did
as well as English sentence frames on DynaSent (about 0.40 accuracy on three classes either
way), and they assume no language."""
MAX_LENGTH = 256
BATCH_SIZE = 64


def load_encoder(base_model_dir: Path) -> PreTrainedModel:
    """The base model without a head, from local files only."""
    try:
        model: PreTrainedModel = AutoModel.from_pretrained(
            str(base_model_dir), local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise BadInputError(f"base model: cannot load {base_model_dir}: {err}") from err
    return model


def describe(label: str, descriptions: Mapping[str, str], template: str = DEFAULT_TEMPLATE) -> str:
    """What is embedded for `label`: its configured description, or its name in words."""
    described = descriptions.get(label) or re.sub(r"[_-]+", " ", label)
    return template.format(description=described, label=label)


def tokenize(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], device: torch.device
) -> dict[str, torch.Tensor]:
    """A padded batch of `texts`, on `device`."""
    encoded = tokenizer(
        list(texts), truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt"
    )
    return {k: v.to(device) for k, v in encoded.items()}


def pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the real tokens, L2-normalised: one row per text."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(mean, dim=-1)


def zero_shot_labels(
    base_model_dir: Path, texts: Sequence[str], labels: Sequence[str]
) -> list[int]:
    """The index in `labels` of each text's zero-shot label (label names as descriptions,
    as the local runner's round-0 server uses them)."""
    tokenizer = load_tokenizer(base_model_dir)
    model = load_encoder(base_model_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module: torch.nn.Module = model
    module.to(device)
    module.eval()

    def embed(batch: Sequence[str]) -> torch.Tensor:
        inputs = tokenize(tokenizer, batch, device)
        return pooled(model(**inputs).last_hidden_state, inputs["attention_mask"])

    with torch.inference_mode():
        label_vectors = embed([describe(label, {}) for label in labels])
        guesses: list[int] = []
        for start in range(0, len(texts), BATCH_SIZE):
            similarities = embed(texts[start : start + BATCH_SIZE]) @ label_vectors.T
            guesses += [int(i) for i in similarities.argmax(-1).tolist()]
    return guesses
