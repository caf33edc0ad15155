"""A managed Label Studio's admin and its token: the operator syncs with the token it started
the server with, at the Service's in-cluster address."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.api.annotationproject import ManagedLabelStudio
from labelloop.api.base import SecretKeySelector
from labelloop.resources.common import Owner
from labelloop.resources.labelstudio import (
    PORT,
    LabelStudioInputs,
    build_deployment,
    build_service,
    internal_secret_name,
    service_url,
)


def inputs(name: str, namespace: str, credentials: SecretKeySelector) -> LabelStudioInputs:
    owner = Owner("AnnotationProject", name, namespace, "uid-1")
    return LabelStudioInputs(
        owner, ManagedLabelStudio(), credentials, f"labelloop@{name}.{namespace}.local"
    )


@pytest.mark.parametrize(
    ("name", "namespace", "credentials", "url"),
    [
        (
            "reviews",
            "ml",
            SecretKeySelector(name="ls-token"),
            "http://reviews-label-studio.ml.svc:8080",
        ),
        (
            "team",
            "annotation",
            SecretKeySelector(name="team-admin", key="api-token"),
            "http://team-label-studio.annotation.svc:8080",
        ),
    ],
)
def test_the_admin_token_is_the_credentials_secret_and_the_url_the_service(
    name: str, namespace: str, credentials: SecretKeySelector, url: str
) -> None:
    given = inputs(name, namespace, credentials)
    container = build_deployment(given)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, dict[str, Any]] = {e["name"]: e for e in container["env"]}
    secret_ref = {"name": credentials.name, "key": credentials.key}
    # Label Studio creates this admin with this token on its first start.
    assert env["LABEL_STUDIO_USER_TOKEN"]["valueFrom"]["secretKeyRef"] == secret_ref
    assert env["LABEL_STUDIO_USERNAME"]["value"] == given.admin_email
    password = env["LABEL_STUDIO_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert password["name"] == internal_secret_name(given.owner)
    # A plain token is what the operator sends; new organisations would want JWTs.
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"]["value"] == "true"

    # The operator's URL names the Service, with a dot, on the Service's port.
    assert service_url(given.owner) == url
    service = build_service(given)
    host = url.removeprefix("http://").split(":")[0]
    assert host == f"{service['metadata']['name']}.{namespace}.svc"
    assert service["spec"]["ports"][0]["port"] == PORT == int(url.rsplit(":", 1)[1])
    assert env["LABEL_STUDIO_HOST"]["value"] == url
