"""The errors `LabelStudioClient` raises: one type per way a caller reacts differently.

Messages never hold the API token; they hold Label Studio's own words where it gave any.
"""

from __future__ import annotations

__all__ = [
    "LabelConfigRejected",
    "LabelStudioAuthError",
    "LabelStudioError",
    "LabelStudioNotFound",
    "LabelStudioRequestError",
    "LabelStudioUnreachable",
]


class LabelStudioError(Exception):
    """Base of every error talking to Label Studio; `status_code` is None without a response."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LabelStudioUnreachable(LabelStudioError):
    """No usable answer after the retries: refused, timed out, or a gateway error (502/503/504).

    Transient by nature: retry later, keep what is known.
    """


class LabelStudioAuthError(LabelStudioError):
    """401/403: the token is wrong, expired, or may not do this. Retrying will not help."""


class LabelConfigRejected(LabelStudioError):
    """Label Studio refused a label config; `detail` is its own explanation, for the user."""

    def __init__(self, message: str, detail: str, status_code: int | None = None) -> None:
        super().__init__(message, status_code)
        self.detail = detail


class LabelStudioNotFound(LabelStudioError):
    """404: the project, task, webhook, … does not exist (any more)."""


class LabelStudioRequestError(LabelStudioError):
    """Any other refusal or failure, e.g. a 400 on a field other than the label config."""
