"""Whether a child must be written: the desired manifest against the object that exists.

A write the API server would turn into no change still costs a request (a server-side apply
is a write even when nothing changes), so the operator compares before it writes. Two checks
together cover what the operator owns:

- every field the desired manifest states holds in the existing object (`needs_update`):
  this catches a child someone else changed. The existing object carries more (defaults the
  API server filled in, fields of other managers, status), which is ignored: a map holds
  when the keys it states hold; a list when it has the same items in the same order; a zero
  value the manifest states (false, 0, "", an empty list) matches a field the server left
  out, as it leaves out zero values; resource quantities compare by value ("1024Mi" is
  "1Gi");
- the fingerprint of the desired manifest, an annotation the manifest itself carries
  (`fingerprinted`): a field the operator stops stating (a selector key it no longer wants)
  changes the fingerprint, which the first check then finds different.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .common import LABEL_PREFIX, Manifest

FINGERPRINT_ANNOTATION = f"{LABEL_PREFIX}/desired-hash"
# Of metadata, only these are the operator's to state; the rest (name, namespace) identify it.
OWNED_METADATA = ("labels", "annotations", "ownerReferences")
# Values under these keys are resource quantities.
QUANTITY_KEYS = frozenset({"limits", "requests", "sizeLimit", "capacity"})
ZERO_VALUES: tuple[Any, ...] = (None, False, 0, "", [], {})
"""What the API server leaves out of what it returns."""

_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{
        suffix: Decimal(1024) ** (i + 1)
        for i, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))
    },
}


def fingerprinted(manifest: Manifest) -> Manifest:
    """`manifest` with the fingerprint of its own content as an annotation."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    metadata = dict(manifest.get("metadata") or {})
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        FINGERPRINT_ANNOTATION: digest,
    }
    return {**manifest, "metadata": metadata}


def needs_update(desired: Manifest, existing: Manifest) -> bool:
    """Whether writing `desired` would change `existing` (see the module docstring)."""
    owned = {
        k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata", "status")
    }
    metadata = desired.get("metadata") or {}
    owned["metadata"] = {k: metadata[k] for k in OWNED_METADATA if k in metadata}
    return not _holds(owned, existing, in_quantities=False)


def _holds(want: Any, have: Any, *, in_quantities: bool) -> bool:
    if isinstance(want, dict):  # the keys stated must hold; others may be there
        if have is None:
            have = {}
        if not isinstance(have, dict):
            return False
        return all(
            _holds(value, have.get(key), in_quantities=in_quantities or key in QUANTITY_KEYS)
            for key, value in want.items()
        )
    if _is_zero(want):
        return _is_zero(have)
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(
            _holds(w, h, in_quantities=in_quantities) for w, h in zip(want, have, strict=True)
        )
    if in_quantities and isinstance(want, str | int) and isinstance(have, str | int):
        value = _quantity(want)
        return value is not None and value == _quantity(have)
    return bool(want == have and type(want) is type(have))


def _is_zero(value: Any) -> bool:
    return any(value == zero and type(value) is type(zero) for zero in ZERO_VALUES)


def _quantity(value: str | int) -> Decimal | None:
    """A Kubernetes resource quantity's value; None for text that is not one."""
    match = _QUANTITY.match(str(value))
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        return Decimal(number) * _SUFFIXES[suffix or ""]
    except InvalidOperation:
        return None
