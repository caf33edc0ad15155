"""A managed Label Studio's SSRF ban list: everything Label Studio bans, but the Service range."""

from __future__ import annotations

import ipaddress

import pytest

from labelloop.api.annotationproject import ManagedLabelStudio
from labelloop.api.base import SecretKeySelector
from labelloop.resources.common import Owner
from labelloop.resources.labelstudio import (
    LABEL_STUDIO_BANNED_SUBNETS,
    LabelStudioInputs,
    banned_subnets,
    build_deployment,
)


def banned(address: str, subnets: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(s) for s in subnets)


@pytest.mark.parametrize(
    ("allowed", "address", "is_banned"),
    [
        # Nothing allowed: Label Studio's own list.
        ((), "10.96.0.10", True),
        # A Service (prelabel server, webhook receiver) in the allowed range may be called...
        (("10.96.0.0/16",), "10.96.0.10", False),
        (("10.96.0.0/16",), "10.96.255.254", False),
        # ...but not a pod, a node or another private network beside it.
        (("10.96.0.0/16",), "10.244.0.7", True),
        (("10.96.0.0/16",), "10.97.0.1", True),
        (("10.96.0.0/16",), "192.168.1.1", True),
        (("10.96.0.0/16",), "172.16.0.1", True),
        # Loopback and the cloud metadata address stay banned, even when asked for.
        (("169.254.0.0/16", "127.0.0.0/8"), "169.254.169.254", True),
        (("169.254.0.0/16", "127.0.0.0/8"), "127.0.0.1", True),
        # Two ranges, and IPv6.
        (("10.96.0.0/12", "fd00:10:96::/112"), "10.100.1.1", False),
        (("10.96.0.0/12", "fd00:10:96::/112"), "fd00:10:96::a", False),
        (("10.96.0.0/12", "fd00:10:96::/112"), "fd00:10:97::a", True),
        # Public addresses were never banned.
        (("10.96.0.0/16",), "8.8.8.8", False),
    ],
)
def test_only_the_allowed_ranges_are_cut_out(
    allowed: tuple[str, ...], address: str, is_banned: bool
) -> None:
    assert banned(address, banned_subnets(allowed)) is is_banned


def test_with_nothing_allowed_the_list_covers_label_studios_own() -> None:
    subnets = banned_subnets(())
    for default in LABEL_STUDIO_BANNED_SUBNETS:
        network = ipaddress.ip_network(default)
        assert banned(str(network.network_address), subnets)


def test_the_deployment_bans_all_but_the_operators_service_range() -> None:
    inputs = LabelStudioInputs(
        Owner("AnnotationProject", "reviews", "ml", "uid-1"),
        ManagedLabelStudio(),
        SecretKeySelector(name="ls-token"),
        "labelloop@reviews.ml.local",
        service_cidrs=("10.96.0.0/16",),
    )
    container = build_deployment(inputs)["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["USER_ADDITIONAL_BANNED_SUBNETS"] == ",".join(banned_subnets(["10.96.0.0/16"]))
    assert not banned("10.96.3.4", env["USER_ADDITIONAL_BANNED_SUBNETS"].split(","))
