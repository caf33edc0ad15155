"""kopf handlers, one module per kind. Importing this package registers them all."""

from . import annotationproject, finetunejob, prelabelservice, status_metrics

__all__ = ["annotationproject", "finetunejob", "prelabelservice", "status_metrics"]
