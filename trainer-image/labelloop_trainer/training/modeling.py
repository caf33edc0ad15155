"""The base model with a task head and LoRA adapters, built from local files only.

Only the adapters and the task head are trained: the base model stays frozen, which keeps
the optimiser state and every saved version small (kilobytes to a few megabytes) and lets
many versions share one base model on the volume. The head is new, so it is trained in full
(`modules_to_save`). When no target modules are configured, the attention's query and value
projections are adapted, found by their names in the model.

A single-label model reads its text as sentence encoders are trained to be read: the mean of
the token states, L2-normalised (`SentenceClassifier`), not the first token through BERT's
pooler, which sentence-embedding checkpoints such as all-MiniLM never trained. Its head can
then start as the zero-shot prelabeler (`zeroshot.start_from_zero_shot`). Multi-label and NER
models keep the library's heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft import TaskType as PeftTask
from transformers import (
    AutoModel,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from labelloop.api.labelconfig import TaskType
from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training.settings import LoraSettings

PEFT_TASKS = {TaskType.MULTI_LABEL: PeftTask.SEQ_CLS, TaskType.NER: PeftTask.TOKEN_CLS}
"""PEFT's wrapper for the library's heads; a `SentenceClassifier` is wrapped as a plain module."""

QUERY_VALUE_NAMES = (
    ("query", "value"),  # BERT, RoBERTa, MiniLM, ELECTRA
    ("q_lin", "v_lin"),  # DistilBERT
    ("q_proj", "v_proj"),  # BART, Llama, Mistral
    ("query_proj", "value_proj"),  # DeBERTa-v2
    ("Wqkv",),  # ModernBERT
    ("c_attn",),  # GPT-2
)


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """A fast tokenizer from a local directory (fast: NER needs character offsets)."""
    try:
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            str(path), local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise BadInputError(f"base model: no tokenizer in {path}: {err}") from err
    return tokenizer


def pooled(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over the real tokens, L2-normalised: one row per text."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(mean, dim=-1)


class SentenceClassifier(torch.nn.Module):
    """One-of-n classification over the encoder's mean-pooled, normalised text embedding.

    Called like a Hugging Face classifier (token tensors and optional `labels` in, an output
    with `loss` and `logits` out), so training, evaluation, serving and the ONNX export treat
    it as one.
    """

    base_model_prefix = "encoder"

    def __init__(self, encoder: PreTrainedModel, names: Sequence[str]) -> None:
        super().__init__()
        self.encoder = encoder
        self.config: PretrainedConfig = encoder.config
        self.classifier = torch.nn.Linear(int(encoder.config.hidden_size), len(names))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **extra
        ).last_hidden_state
        logits = self.classifier(pooled(hidden, attention_mask))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


TaskModel = PreTrainedModel | SentenceClassifier
"""A base model with its task head, as `base_model` builds it."""


def load_encoder(path: Path) -> PreTrainedModel:
    """The base model without a head, from local files only."""
    try:
        model: PreTrainedModel = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise BadInputError(f"base model: cannot load {path}: {err}") from err
    return model


def base_model(path: Path, task_type: TaskType, names: Sequence[str]) -> TaskModel:
    """The pretrained model of `path` with a fresh head for `names` (its output classes)."""
    if task_type is TaskType.SINGLE_LABEL:
        return SentenceClassifier(load_encoder(path), names)
    auto = (
        AutoModelForTokenClassification
        if task_type is TaskType.NER
        else AutoModelForSequenceClassification
    )
    try:
        model: PreTrainedModel = auto.from_pretrained(
            str(path),
            local_files_only=True,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: i for i, name in enumerate(names)},
            problem_type=(
                "multi_label_classification" if task_type is TaskType.MULTI_LABEL else None
            ),
        )
    except (OSError, ValueError) as err:
        raise BadInputError(f"base model: cannot load a model from {path}: {err}") from err
    return model


def head_modules(model: TaskModel) -> list[str]:
    """The task head: the top-level modules with weights besides the backbone, and the pooler
    where the head reads it.

    The pooler (BERT's dense layer over the first token) feeds nothing but the library's
    sequence head, and in sentence-embedding checkpoints such as all-MiniLM it was never
    trained at all, so it belongs with that head: frozen, it would squash every text through
    random weights. A `SentenceClassifier` does not read it.
    """
    heads = [
        name
        for name, child in model.named_children()
        if name != model.base_model_prefix and any(True for _ in child.parameters())
    ]
    if isinstance(model, SentenceClassifier):
        return heads
    backbone = getattr(model, model.base_model_prefix, None)
    pooler = getattr(backbone, "pooler", None)
    if isinstance(pooler, torch.nn.Module) and any(True for _ in pooler.parameters()):
        heads.append("pooler")
    return heads


def target_modules(model: torch.nn.Module, configured: Sequence[str]) -> list[str]:
    """The configured target modules, or the query/value projections of this architecture."""
    linear = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"
    }
    if configured:
        missing = sorted(set(configured) - linear)
        if missing:
            raise BadInputError(
                f"method.lora.targetModules: {missing} are not linear layers of the model; "
                f"it has: {', '.join(sorted(linear))}"
            )
        return list(configured)
    for names in QUERY_VALUE_NAMES:
        if set(names) <= linear:
            return list(names)
    raise BadInputError(
        "method.lora.targetModules: cannot pick the attention projections of this model; "
        f"set them explicitly from its linear layers: {', '.join(sorted(linear))}"
    )


def with_lora(model: TaskModel, task_type: TaskType, lora: LoraSettings) -> PeftModel:
    """Wrap `model` with trainable LoRA adapters and a fully trainable head."""
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target_modules(model, lora.target_modules),
        modules_to_save=head_modules(model),
        task_type=PEFT_TASKS.get(task_type),
    )
    peft_model = get_peft_model(model, config)
    assert isinstance(peft_model, PeftModel)
    return peft_model


def with_adapter(model: TaskModel, adapter_dir: Path) -> PeftModel:
    """`model` with the saved adapter (and head) of a version, for inference."""
    loaded = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    assert isinstance(loaded, PeftModel)
    return loaded


def use_bf16(device: torch.device) -> bool:
    """bf16 autocast where the GPU computes in it natively (Ampere and later)."""
    return device.type == "cuda" and torch.cuda.is_bf16_supported()
