"""JSON merge patches (RFC 7386), as the API server applies them to status.

A reconcile builds its status as a merge patch; `changes` tells whether the API server would
store anything new, so that a pass that found nothing new writes nothing. As the API server
stores a custom resource, a null inside a value that replaces (a list's items) is dropped
too: no field of labelloop's schemas is nullable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def merged(target: Any, patch: Any) -> Any:
    """`target` with `patch` merged in: maps merge key by key, null removes a key, anything
    else (lists included) replaces, without nulls."""
    if isinstance(patch, list):
        return [merged(None, item) for item in patch]
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def changes(target: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether merging `patch` into `target` gives anything other than `target`."""
    return bool(merged(target, patch) != dict(target))
