"""The manifests of one local run: a directory of the YAML a cluster would take.

labelloop objects are validated by `api.manifests.parse_manifest`, so a bad one fails with the
operator's own message naming the field. Secrets and ConfigMaps are read (the Label Studio
token, ConfigMap task sources); every other kind (Namespace, PersistentVolumeClaim, …) means
nothing on one machine and is skipped with a one-line note.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..api import ANNOTATION_PROJECT, API_VERSION, PRELABEL_SERVICE
from ..api.annotationproject import AnnotationProjectSpec
from ..api.manifests import Manifest, ManifestError, parse_manifest
from ..api.prelabelservice import PrelabelServiceSpec


@dataclass(frozen=True)
class Project:
    """The AnnotationProject to run, with its PrelabelService when it names one."""

    name: str
    namespace: str
    spec: AnnotationProjectSpec
    service_name: str | None = None
    service: PrelabelServiceSpec | None = None


@dataclass
class LocalManifests:
    """What a manifest directory holds, by kind."""

    objects: list[Manifest] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Secret name → decoded data (`stringData` and base64 `data`)."""
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """One line per object skipped, for the person running it."""

    def project(self, name: str | None = None) -> Project:
        """The AnnotationProject named `name`, or the only one there is."""
        projects = [m for m in self.objects if m.kind is ANNOTATION_PROJECT]
        if name is not None:
            projects = [m for m in projects if m.name == name]
        if len(projects) != 1:
            found = ", ".join(m.name for m in projects) or "none"
            which = f"named {name!r}" if name else "(choose one with --project)"
            raise ManifestError("manifests", [f"need one AnnotationProject {which}; found {found}"])
        manifest = projects[0]
        spec = manifest.spec
        assert isinstance(spec, AnnotationProjectSpec)
        if spec.prelabel is None:
            return Project(manifest.name, manifest.namespace, spec)
        wanted = spec.prelabel.service_ref.name
        service = next(
            (m for m in self.objects if m.kind is PRELABEL_SERVICE and m.name == wanted), None
        )
        if service is None:
            raise ManifestError(
                f"AnnotationProject {manifest.name}",
                [f"spec.prelabel.serviceRef.name: no PrelabelService {wanted!r} in the manifests"],
            )
        assert isinstance(service.spec, PrelabelServiceSpec)
        if service.spec.annotation_project_ref.name != manifest.name:
            raise ManifestError(
                f"PrelabelService {wanted}",
                [
                    f"spec.annotationProjectRef.name: {service.spec.annotation_project_ref.name!r}"
                    f" is not AnnotationProject {manifest.name!r}, whose serviceRef names it"
                ],
            )
        return Project(manifest.name, manifest.namespace, spec, wanted, service.spec)


def unused(found: LocalManifests, project: Project) -> list[str]:
    """Notes on the labelloop objects a run of `project` leaves alone."""
    used = {(ANNOTATION_PROJECT.kind, project.name), (PRELABEL_SERVICE.kind, project.service_name)}
    return [
        f"{m.kind.kind} {m.name}: not run locally (the runner runs AnnotationProject "
        f"{project.name}, its training rounds and its PrelabelService)"
        for m in found.objects
        if (m.kind.kind, m.name) not in used
    ]


def load(directory: Path) -> LocalManifests:
    """Every object of the `*.yaml`/`*.yml` files of `directory`, in file-name order."""
    if not directory.is_dir():
        raise ManifestError(str(directory), ["not a directory"])
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise ManifestError(str(directory), ["no *.yaml files found"])
    found = LocalManifests()
    for path in files:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as exc:
            raise ManifestError(str(path), [f"not valid YAML: {exc}"]) from None
        for document in documents:
            add(found, document, str(path))
    return found


def add(found: LocalManifests, document: Any, source: str) -> None:
    """Sort one YAML document into `found`."""
    if not isinstance(document, Mapping):
        raise ManifestError(source, [f"expected an object, got {type(document).__name__}"])
    kind = str(document.get("kind") or "")
    name = str((document.get("metadata") or {}).get("name") or "")
    if document.get("apiVersion") == API_VERSION:
        found.objects.append(parse_manifest(document, source=source))
    elif document.get("apiVersion") == "v1" and kind == "Secret":
        found.secrets[name] = _secret_data(document, f"{source} (Secret {name})")
    elif document.get("apiVersion") == "v1" and kind == "ConfigMap":
        data = document.get("data") or {}
        found.config_maps[name] = {str(k): str(v) for k, v in data.items()}
    else:
        found.notes.append(f"{source}: skipped {kind or 'an object'} {name} (not used locally)")


def _secret_data(document: Mapping[str, Any], source: str) -> dict[str, str]:
    data = {str(k): str(v) for k, v in (document.get("stringData") or {}).items()}
    for key, value in (document.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ManifestError(source, [f"data.{key}: not base64-encoded text"]) from None
    return data
