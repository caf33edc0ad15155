"""kopf handlers, one module per kind. Importing this package registers them all."""

from . import (
    annotationproject,
    finetunejob,
    label_studio_poll,
    prelabelservice,
    status_metrics,
    watches,
    webhooks,
)

__all__ = [
    "annotationproject",
    "finetunejob",
    "label_studio_poll",
    "prelabelservice",
    "status_metrics",
    "watches",
    "webhooks",
]
