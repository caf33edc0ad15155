"""Reading a manifest directory for `labelloop run`: what is used, skipped or refused."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from labelloop.api.manifests import ManifestError
from labelloop.cli import main
from labelloop.local import manifests
from labelloop.local.volumes import VolumeError, Volumes, parse_volume
from paths import REPO_ROOT

PROJECT = """
apiVersion: labelloop.io/v1alpha1
kind: AnnotationProject
metadata: {name: reviews, namespace: ml}
spec:
  labelStudio: {external: {url: "http://127.0.0.1:1"}}
  credentialsSecretRef: {name: ls-token, key: token}
  project:
    title: Reviews
    labelConfig: |
      <View><Text name="text" value="$text"/>
      <Choices name="s" toName="text"><Choice value="A"/><Choice value="B"/></Choices></View>
  prelabel: {serviceRef: {name: reviews-prelabel}}
"""
SERVICE = """
apiVersion: labelloop.io/v1alpha1
kind: PrelabelService
metadata: {name: reviews-prelabel, namespace: ml}
spec:
  annotationProjectRef: {name: reviews}
  model: {fineTuneJobRef: {name: reviews-r1}}
"""


def write(directory: Path, **files: str) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_the_repository_examples_load_with_their_cluster_only_kinds_skipped() -> None:
    found = manifests.load(REPO_ROOT / "examples")
    skipped = " ".join(found.notes)
    assert "skipped Namespace ml" in skipped
    assert "skipped PersistentVolumeClaim models" in skipped
    project = found.project()
    assert project.name == "reviews"
    assert project.service_name == "reviews-prelabel"
    # A FineTuneJob of its own is the cluster's business; the runner says it leaves it alone.
    assert [n.split(":")[0] for n in manifests.unused(found, project)] == [
        "FineTuneJob reviews-r3",
        "FineTuneJob reviews-baseline",
    ]


def test_the_demo_manifests_name_a_project_its_service_and_its_tasks() -> None:
    found = manifests.load(REPO_ROOT / "examples" / "demo")
    assert found.notes == [f"{REPO_ROOT}/examples/demo/00-namespace.yaml: skipped Namespace "
                           "labelloop-demo (not used locally)"]  # fmt: skip
    project = found.project()
    assert project.spec.label_studio.managed is not None
    assert project.service is not None and project.service.auto_promote
    assert "tasks.jsonl" in found.config_maps["demo-tasks"]


def test_secrets_are_decoded_from_data_and_string_data(tmp_path: Path) -> None:
    token = base64.b64encode(b"s3cret").decode()
    secret = f"""
apiVersion: v1
kind: Secret
metadata: {{name: ls-token}}
data: {{token: {token}}}
stringData: {{other: plain}}
"""
    found = manifests.load(
        write(tmp_path, **{"a.yaml": PROJECT + "---" + SERVICE, "b.yaml": secret})
    )
    assert found.secrets["ls-token"] == {"token": "s3cret", "other": "plain"}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("title: Reviews", "title: R"), "spec.project.title"),
        (('{external: {url: "http://127.0.0.1:1"}}', "{}"), "spec.labelStudio"),
        (("name: ls-token, key: token", "key: token"), "spec.credentialsSecretRef.name"),
    ],
)
def test_an_invalid_labelloop_manifest_fails_naming_the_field(
    tmp_path: Path, edit: tuple[str, str], field: str
) -> None:
    write(tmp_path, **{"project.yaml": PROJECT.replace(*edit)})
    with pytest.raises(
        ManifestError, match=rf"project\.yaml \(AnnotationProject reviews\): .*{field}"
    ):
        manifests.load(tmp_path)


def test_a_missing_prelabel_service_is_named(tmp_path: Path) -> None:
    found = manifests.load(write(tmp_path, **{"p.yaml": PROJECT}))
    with pytest.raises(
        ManifestError, match=r"spec\.prelabel\.serviceRef\.name: no PrelabelService"
    ):
        found.project()


def test_the_cli_reports_an_invalid_manifest_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, **{"p.yaml": PROJECT.replace("title: Reviews", "title: R")})
    assert main(["run", "-f", str(tmp_path), "--work-dir", str(tmp_path / "w")]) == 2
    assert "spec.project.title" in capsys.readouterr().err


def test_the_cli_needs_the_token_of_an_external_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    write(tmp_path, **{"p.yaml": PROJECT + "---" + SERVICE})
    assert main(["run", "-f", str(tmp_path), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "spec.credentialsSecretRef" in err and "LABEL_STUDIO_API_KEY" in err


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("pvc://models/base/minilm", "/claims/models/base/minilm"),
        ("pvc://data", "/root/data"),
        ("pvc://models", "/claims/models"),
    ],
)
def test_pvc_uris_map_to_claim_directories(uri: str, expected: str) -> None:
    volumes = Volumes(Path("/root"), {"models": Path("/claims/models")})
    assert str(volumes.path(uri, "f")) == expected


@pytest.mark.parametrize("uri", ["s3://bucket/model", "/abs/path", "pvc:///x"])
def test_other_uris_are_refused_naming_the_field(uri: str) -> None:
    with pytest.raises(VolumeError, match=r"^spec\.x\.uri: "):
        Volumes(Path("/root")).path(uri, "spec.x.uri")


def test_volume_flags() -> None:
    assert parse_volume("models=/tmp") == ("models", Path("/tmp"))
    with pytest.raises(VolumeError, match="--volume"):
        parse_volume("models")


def test_the_cli_needs_the_base_model_on_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "work"
    assert main(["run", "-f", str(REPO_ROOT / "examples" / "demo"), "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert "spec.training.template.baseModel.uri: pvc://models/base/minilm" in err
    assert "--volume models=DIR" in err
