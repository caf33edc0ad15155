"""Classification and entity-level metrics, written out so that their definitions are plain.

Scalars use the names `accuracy`, `macro_precision`, `macro_recall`, `macro_f1` (plus
`micro_f1` where it differs from accuracy); the API's short names `precision`, `recall` and
`f1` mean the macro averages. A class that is never predicted has precision 0 (not NaN), so a
model that ignores a class is penalised rather than excused.

NER is scored like seqeval's default mode: entities are maximal runs `B-X I-X…` (an `I-X`
after anything but `X` also opens an entity), and an entity counts only when its type and
both boundaries match.

Domain metrics plug in by a Python path `module:function`; the function receives the gold
and predicted values in label terms (a label, a list of labels, or a list of BIO tags per
example) and the label set, and returns a number or a mapping of names to numbers.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labelloop_trainer.errors import BadInputError

API_NAMES = {"precision": "macro_precision", "recall": "macro_recall", "f1": "macro_f1"}

Plugin = Callable[[Sequence[Any], Sequence[Any], Sequence[str]], float | Mapping[str, float]]


def canonical(name: str) -> str:
    """The metric's name as computed here (`f1` → `macro_f1`)."""
    return API_NAMES.get(name, name)


def higher_is_better(name: str) -> bool:
    """Losses fall as models improve; every other metric here rises."""
    return not canonical(name).endswith("loss")


def sampling_noise(name: str, examples: int) -> float:
    """How far the metric `name`, measured on `examples` held-out examples, moves by chance.

    Accuracy, precision, recall and F1 are shares of the examples, so one standard error of
    a share at its widest, 0.5/sqrt(n): 0.08 on 40 examples, 0.045 on 120, 0.02 on 500.
    Losses and plug-in metrics have no known scale: 0.
    """
    share = canonical(name) in BUILT_IN and higher_is_better(name)
    return 0.5 / math.sqrt(examples) if share and examples > 0 else 0.0


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _summary(
    counts: Mapping[str, tuple[int, int, int]], support: Mapping[str, int]
) -> dict[str, Any]:
    per_class = {}
    for label, (tp, fp, fn) in counts.items():
        p, r, f = _prf(tp, fp, fn)
        per_class[label] = {"precision": p, "recall": r, "f1": f, "support": support[label]}
    n = len(per_class) or 1
    return {
        "macro_precision": sum(c["precision"] for c in per_class.values()) / n,
        "macro_recall": sum(c["recall"] for c in per_class.values()) / n,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / n,
        "per_class": per_class,
    }


def single_label(gold: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, and the confusion matrix.

    The matrix's rows are the gold labels and its columns the predictions, in `labels` order.
    """
    k = len(labels)
    matrix = [[0] * k for _ in range(k)]
    for g, p in zip(gold, pred, strict=True):
        matrix[g][p] += 1
    counts = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        counts[label] = (tp, sum(matrix[r][i] for r in range(k)) - tp, sum(matrix[i]) - tp)
    support = {label: sum(matrix[i]) for i, label in enumerate(labels)}
    correct = sum(matrix[i][i] for i in range(k))
    return {
        "accuracy": correct / len(gold) if gold else 0.0,
        **_summary(counts, support),
        "confusion_matrix": {"labels": list(labels), "matrix": matrix},
    }


def multi_label(
    gold: Sequence[Sequence[bool]], pred: Sequence[Sequence[bool]], labels: Sequence[str]
) -> dict[str, Any]:
    """Subset accuracy (all labels right), macro/micro/per-label scores, per-label confusion."""
    counts = {}
    confusion = {}
    for j, label in enumerate(labels):
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g[j] and p[j])
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if not g[j] and p[j])
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g[j] and not p[j])
        counts[label] = (tp, fp, fn)
        confusion[label] = {"tp": tp, "fp": fp, "fn": fn, "tn": len(gold) - tp - fp - fn}
    support = {label: tp + fn for label, (tp, _, fn) in counts.items()}
    exact = sum(1 for g, p in zip(gold, pred, strict=True) if list(g) == list(p))
    totals = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {
        "accuracy": exact / len(gold) if gold else 0.0,
        **_summary(counts, support),
        "micro_f1": _prf(*totals)[2],
        "confusion_matrix": confusion,
    }


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """The entities `(type, first token, last token + 1)` of a BIO tag sequence."""
    found = set()
    kind: str | None = None
    start = 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and name == kind
        if kind is not None and not continues:
            found.add((kind, start, i))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = name, i
    return found


def ner(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], labels: Sequence[str]
) -> dict[str, Any]:
    """Entity-level micro/macro/per-type scores and token accuracy."""
    tp = dict.fromkeys(labels, 0)
    fp = dict.fromkeys(labels, 0)
    fn = dict.fromkeys(labels, 0)
    tokens = right = 0
    for g, p in zip(gold, pred, strict=True):
        tokens += len(g)
        right += sum(1 for a, b in zip(g, p, strict=True) if a == b)
        gold_set, pred_set = entities(g), entities(p)
        for kind, *_ in gold_set & pred_set:
            tp[kind] = tp.get(kind, 0) + 1
        for kind, *_ in pred_set - gold_set:
            fp[kind] = fp.get(kind, 0) + 1
        for kind, *_ in gold_set - pred_set:
            fn[kind] = fn.get(kind, 0) + 1
    counts = {label: (tp[label], fp[label], fn[label]) for label in labels}
    support = {label: tp[label] + fn[label] for label in labels}
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {
        "accuracy": right / tokens if tokens else 0.0,
        **_summary(counts, support),
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
    }


def load_plugin(path: str) -> Plugin:
    """The function named by `module:function`."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise BadInputError(f"metrics: {path!r} must be a built-in name or 'module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise BadInputError(f"metrics: cannot load {path!r}: {err}") from err
    if not callable(function):
        raise BadInputError(f"metrics: {path!r} is not a function")
    result: Plugin = function
    return result


def run_plugins(
    paths: Sequence[str], gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[str]
) -> dict[str, float]:
    """Call each plug-in; a number is stored under the function's name."""
    values: dict[str, float] = {}
    for path in paths:
        value = load_plugin(path)(gold, pred, labels)
        if isinstance(value, Mapping):
            values.update({str(k): float(v) for k, v in value.items()})
        else:
            values[path.partition(":")[2]] = float(value)
    return values


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric top-level metrics (what the result line and the status carry)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


BUILT_IN = frozenset(
    {
        "accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "micro_precision",
        "micro_recall",
        "micro_f1",
        "eval_loss",
    }
)


def requested(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split requested metrics into built-in names (canonical) and plug-in paths."""
    built_in, plugins = [], []
    for name in names:
        if ":" in name:
            load_plugin(name)
            plugins.append(name)
        elif canonical(name) in BUILT_IN:
            built_in.append(canonical(name))
        else:
            allowed = ", ".join(sorted({*API_NAMES, *BUILT_IN}))
            raise BadInputError(
                f"metrics: {name!r} is not a metric; use one of {allowed} or 'module:function'"
            )
    return built_in, plugins
