"""The one place where labelloop talks to Label Studio (over label-studio-sdk)."""

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
