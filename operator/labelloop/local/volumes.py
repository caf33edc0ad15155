"""Where a manifest's `pvc://<claim>/<path>` URIs live on this machine.

In a cluster a claim is mounted at `/mnt/<claim>` (see `resources.common.mount_pvc_uri`);
here each claim is a directory: the one `--volume CLAIM=DIR` names, else
`<work dir>/volumes/<claim>`. So the manifests that run on a cluster run here unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class VolumeError(ValueError):
    """A URI the local runner cannot place on this machine; the message names the field."""


@dataclass(frozen=True)
class Volumes:
    """Claim directories: those given, and `root/<claim>` for the others."""

    root: Path
    claims: Mapping[str, Path] = field(default_factory=dict)

    def claim_dir(self, claim: str) -> Path:
        return self.claims.get(claim, self.root / claim)

    def path(self, uri: str, field_path: str) -> Path:
        """The local directory or file of `uri` (a `pvc://<claim>/<path>` URI)."""
        if not uri.startswith("pvc://"):
            raise VolumeError(
                f"{field_path}: {uri!r} cannot be placed on this machine; use "
                "pvc://<claim>/<path>, as on a cluster, and map the claim with --volume CLAIM=DIR"
            )
        claim, _, rest = uri.removeprefix("pvc://").partition("/")
        if not claim:
            raise VolumeError(f"{field_path}: {uri!r} names no claim")
        return self.claim_dir(claim) / rest if rest else self.claim_dir(claim)


def parse_volume(text: str) -> tuple[str, Path]:
    """`CLAIM=DIR` of the `--volume` flag."""
    claim, sep, directory = text.partition("=")
    if not sep or not claim or not directory:
        raise VolumeError(f"--volume: {text!r} is not CLAIM=DIR")
    return claim, Path(directory).expanduser().resolve()
