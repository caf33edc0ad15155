"""Reading labelloop manifests (YAML or already-parsed objects) into typed specs.

The operator parses every object it reconciles through here, and the local runner reads
manifest files through here, so a bad manifest gets the same message everywhere: one line per
problem, each naming the field (`spec.hyperparameters.epochs: ...`) and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .base import API_VERSION, ApiModel
from .kinds import KINDS, Kind

_KINDS_BY_NAME = {k.kind: k for k in KINDS}


class ManifestError(ValueError):
    """A manifest that is not a valid labelloop object; the message lists every problem."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Manifest:
    """A labelloop object with its spec parsed."""

    kind: Kind
    name: str
    namespace: str
    spec: ApiModel
    generation: int | None = None


def parse_manifest(obj: Mapping[str, Any], *, source: str = "manifest") -> Manifest:
    """Validate one object (apiVersion, kind, metadata.name and the spec)."""
    api_version, kind_name = obj.get("apiVersion"), obj.get("kind")
    if api_version != API_VERSION:
        raise ManifestError(source, [f"apiVersion: must be {API_VERSION}, got {api_version!r}"])
    kind = _KINDS_BY_NAME.get(str(kind_name))
    if kind is None:
        allowed = ", ".join(_KINDS_BY_NAME)
        raise ManifestError(source, [f"kind: must be one of {allowed}, got {kind_name!r}"])
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(source, ["metadata.name: required"])
    source = f"{kind.kind} {name}" if source == "manifest" else f"{source} ({kind.kind} {name})"
    try:
        spec = kind.spec.model_validate(obj.get("spec"))
    except ValidationError as error:
        raise ManifestError(source, _problems(error)) from None
    return Manifest(
        kind=kind,
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        spec=spec,
        generation=metadata.get("generation"),
    )


def parse_manifests(text: str, *, source: str = "manifest") -> list[Manifest]:
    """Every labelloop object in a multi-document YAML text; other kinds are refused."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    return [parse_manifest(d, source=source) for d in documents]


def load_manifest_dir(directory: Path) -> list[Manifest]:
    """All manifests in `*.yaml` and `*.yml` files of a directory, in file-name order."""
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise ManifestError(str(directory), ["no *.yaml files found"])
    return [m for f in files for m in parse_manifests(f.read_text(), source=str(f))]


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for e in error.errors():
        path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        # An invariant names its own sub-field ("database: ..."); join it onto the path.
        head, sep, rest = message.partition(": ")
        if sep and head.replace(".", "").isalnum() and " " not in head:
            path, message = f"{path}.{head}", rest
        problems.append(f"{path}: {message}")
    return problems
