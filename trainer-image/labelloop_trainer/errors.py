"""Failures the trainer reports with a contract exit code.

The operator tells a configuration or data problem (the user must act: exit 2) and an
existing version (nothing to do: exit 3) apart from a crash (exit 1) by the exit code alone,
so every expected failure is one of these exceptions and the CLI maps it to its code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import ValidationError

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class TrainerError(Exception):
    """An expected failure; its message is shown to the user as is."""

    exit_code = 1


class BadInputError(TrainerError):
    """Bad data or configuration; the message names the field and what is allowed."""

    exit_code = 2


class VersionExistsError(TrainerError):
    """The model version already exists; versions are immutable."""

    exit_code = 3


def invalid(err: ValidationError, names: Mapping[str, str] | None = None) -> BadInputError:
    """The BadInputError for a pydantic ValidationError: each problem as `field: message`.

    Fields are named by their error location, dotted and in camelCase as in the job file
    (`spec.hyperparameters.learningRate`); `names` renames locations (for the flags of a
    command line, e.g. `{"learning_rate": "--learning-rate"}`). A model's own rule
    (an `Invariant`) names its field in its message, which then joins the location.
    """
    problems = []
    for error in err.errors(include_url=False):
        where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"])
        where = where.replace(".[", "[")
        message = str(error["msg"]).removeprefix("Value error, ")
        field, sep, rest = message.partition(": ")
        if sep and _FIELD.fullmatch(field):
            where, message = f"{where}.{field}" if where else field, rest
        if names is not None:
            where = names.get(where, where)
        problems.append(f"{where}: {message}" if where else message)
    return BadInputError("; ".join(problems))
