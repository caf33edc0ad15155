"""Failures the trainer reports with a contract exit code.

The operator tells a configuration or data problem (the user must act: exit 2) and an
existing version (nothing to do: exit 3) apart from a crash (exit 1) by the exit code alone,
so every expected failure is one of these exceptions and the CLI maps it to its code.
"""


class TrainerError(Exception):
    """An expected failure; its message is shown to the user as is."""

    exit_code = 1


class BadInputError(TrainerError):
    """Bad data or configuration; the message names the field and what is allowed."""

    exit_code = 2


class VersionExistsError(TrainerError):
    """The model version already exists; versions are immutable."""

    exit_code = 3
