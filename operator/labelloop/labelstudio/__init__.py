"""The one place where labelloop talks to Label Studio (over label-studio-sdk).

The names below load on first use: label-studio-sdk (and the pandas it imports) take seconds
to import, and code that only needs the models or errors (the loop's pure policy) should not
pay that at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labelloop.labelstudio.client import LabelStudioClient
    from labelloop.labelstudio.errors import (
        LabelConfigRejected,
        LabelStudioAuthError,
        LabelStudioError,
        LabelStudioNotFound,
        LabelStudioRequestError,
        LabelStudioUnreachable,
    )
    from labelloop.labelstudio.models import (
        Annotation,
        MLBackend,
        Prediction,
        Project,
        Task,
        View,
        Webhook,
    )

_HOMES = {
    "LabelStudioClient": "client",
    **dict.fromkeys(
        (
            "LabelConfigRejected",
            "LabelStudioAuthError",
            "LabelStudioError",
            "LabelStudioNotFound",
            "LabelStudioRequestError",
            "LabelStudioUnreachable",
        ),
        "errors",
    ),
    **dict.fromkeys(
        ("Annotation", "MLBackend", "Prediction", "Project", "Task", "View", "Webhook"), "models"
    ),
}

__all__ = [
    "Annotation",
    "LabelConfigRejected",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioError",
    "LabelStudioNotFound",
    "LabelStudioRequestError",
    "LabelStudioUnreachable",
    "MLBackend",
    "Prediction",
    "Project",
    "Task",
    "View",
    "Webhook",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
