"""Generated manifests for the agreement of the pydantic models and the CRDs (schema and CEL).

`manifest_cases.py` holds one hand-written table of bad manifests; here Hypothesis makes many
more: the design's full manifests (`examples/20-reviews.yaml`) and the minimal ones, each
with a few of their fields changed to values of the same JSON type, in and out of bounds, or
dropped, and blocks that rules tie together (several replicas and a database, autoscaling
bounds, canary steps, NVLink and GPU counts, the promotion metric, the model reference) set
in combinations. The unit tests check what the models say of each; the control-plane tests
check that a real API server says the same.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from manifest_cases import BASES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "20-reviews.yaml"


def _bases() -> list[dict[str, Any]]:
    full = [doc for doc in yaml.safe_load_all(EXAMPLES.read_text()) if doc]
    for doc in full:
        doc["metadata"].pop("namespace", None)
    return [*full, *(make() for make in BASES.values())]


BASE_MANIFESTS = _bases()

# Values that sit on, inside and outside the bounds the models and CRDs declare.
integers = st.one_of(
    st.sampled_from([-1, 0, 1, 2, 3, 7, 8, 16, 20, 21, 63, 64, 100, 101, 1000, 10_000]),
    st.integers(min_value=-(2**31), max_value=2**31),
)
numbers = st.one_of(
    st.sampled_from([-0.1, 0.0, 0.3, 0.5, 0.85, 0.95, 1.0, 1.5, 3e-5, 2.0]),
    st.floats(min_value=-10, max_value=10, allow_nan=False),
)
names = st.one_of(
    st.sampled_from(["reviews", "a", "x" * 63, "x" * 64, "Upper", "has_underscore", "-lead", ""]),
    st.from_regex(r"[a-z0-9][-a-z0-9.]{0,20}", fullmatch=True),
)
uris = st.sampled_from(
    [
        "pvc://models/reviews",
        "pvc://models",
        "pvc://",
        "s3://bucket/path",
        "https://data.example.com/x.jsonl",
        "ftp://x",
        "",
        "/local/path",
    ]
)
steps = st.lists(st.integers(min_value=-5, max_value=110), min_size=0, max_size=22)
strings = st.one_of(names, uris, st.text(max_size=30))


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return integers
    if isinstance(value, float):
        return numbers
    if isinstance(value, str):
        return strings | st.just(value)
    if isinstance(value, list):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return steps
        return st.lists(strings, max_size=4)
    return st.just(value)


def _leaves(obj: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    """Every (path, value) under `obj` whose value is a scalar or a list of scalars."""
    if isinstance(obj, dict):
        found: list[tuple[tuple[str | int, ...], Any]] = []
        for key, value in obj.items():
            found.extend(_leaves(value, (*path, key)))
        return found if found or not path else [(path, obj)]
    if isinstance(obj, list) and any(isinstance(v, dict) for v in obj):
        return [leaf for i, v in enumerate(obj) for leaf in _leaves(v, (*path, i))]
    return [(path, obj)]


def _blocks(obj: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path under `obj` that holds an object (a block that may be dropped)."""
    if not isinstance(obj, dict):
        return []
    found = [path] if path else []
    for key, value in obj.items():
        found.extend(_blocks(value, (*path, key)))
    return found


def _set(obj: Any, path: tuple[str | int, ...], value: Any) -> None:
    for part in path[:-1]:
        obj = obj[part]
    obj[path[-1]] = value


def _drop(obj: Any, path: tuple[str | int, ...]) -> None:
    for part in path[:-1]:
        obj = obj[part]
    del obj[path[-1]]


# Blocks the cross-field rules are about, added to any manifest of their kind.
EXTRA_BLOCKS: dict[str, list[tuple[tuple[str, ...], Any]]] = {
    "AnnotationProject": [
        (("labelStudio", "managed"), {"image": "heartexlabs/label-studio:1.23.2", "replicas": 2}),
        (("labelStudio", "managed", "database"), {"secretRef": {"name": "pg"}}),
        (("labelStudio", "managed", "autoscaling"), {"minReplicas": 3, "maxReplicas": 2}),
        (("data", "inline"), [{"text": "hello"}]),
        (("data", "configMapRef"), {"name": "tasks", "key": "tasks.jsonl"}),
        (("quality", "rules"), [{"label": "Neutral", "minShare": 0.4, "maxShare": 0.3}]),
        (("quality", "rules"), [{"label": "Neutral"}]),
        (("annotators", "routing"), {"expertMinAccuracy": 0.8, "basicMaxAccuracy": 0.9}),
    ],
    "FineTuneJob": [
        (("annotationProjectRef",), {"name": "reviews"}),
        (("dataset",), {"uri": "pvc://data/x.jsonl"}),
        (("resources",), {"nodes": 1, "gpusPerNode": 1, "interconnect": "nvlink"}),
        (("evaluation",), {"metrics": ["f1"], "promotion": {"metric": "accuracy"}}),
        (("hyperparameters", "batchSize"), "auto"),
        (("hyperparameters", "batchSize"), 0),
        (("hyperparameters", "batchSize"), "big"),
    ],
    "PrelabelService": [
        (("model",), {"fineTuneJobRef": {"name": "r1"}, "version": "v1"}),
        (("model",), {"version": "v1"}),
        (("model",), {"fineTuneJobRef": {"name": "r1"}, "baseModel": {"uri": "pvc://m/b"}}),
        (("rollout",), {"strategy": "Canary", "steps": [50, 25, 100]}),
        (("rollout",), {"strategy": "Canary", "steps": [25, 25, 100]}),
        (("rollout",), {"strategy": "BlueGreen", "steps": [10, 90]}),
    ],
}


def _put(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        spec = spec.setdefault(part, {})
        if not isinstance(spec, dict):
            return
    spec[path[-1]] = copy.deepcopy(value)


@st.composite
def manifests(draw: st.DrawFn, name: str = "generated") -> dict[str, Any]:
    """A labelloop manifest with one to four changes to a valid one (see the module docstring)."""
    obj: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASE_MANIFESTS)))
    obj["metadata"] = {"name": name}
    spec = obj["spec"]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        change = draw(st.sampled_from(("leaf", "leaf", "drop", "block")))
        if change == "leaf" and _leaves(spec):
            path, value = draw(st.sampled_from(_leaves(spec)))
            _set(spec, path, draw(_same_type(value)))
        elif change == "drop" and _blocks(spec):
            _drop(spec, draw(st.sampled_from(_blocks(spec))))
        elif change == "block":
            path, block = draw(st.sampled_from(EXTRA_BLOCKS[obj["kind"]]))
            _put(spec, path, block)
    return obj
