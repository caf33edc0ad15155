"""What every reconcile shares: parse the spec, count and time the pass, write typed status.

Each kind's handler is a function `(run, spec) -> None` wrapped by `reconciler`: the wrapper
validates the object with the kind's pydantic models (an invalid spec becomes `Stalled` with
the reason `InvalidSpec`, naming the field), records the pass in `labelloop.metrics`, and
hands the handler a `Reconcile` through which it reads the previous status and writes the new
one. Status is only ever written from the status models of `labelloop.api`, serialised with
their aliases, so the writer and the CRD schema cannot drift apart. The status patch is
written by `controllers.driver` only when it changes anything.

A pass that waits on time rather than on an event (a deadline, a rollout step, a server that
does not answer) asks for another look with `Reconcile.recheck_in`; the wrapped handler
returns the soonest such time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf
import pydantic

from .. import metrics
from ..api import ApiModel, Kind, ManifestError, parse_manifest
from ..api.base import CommonStatus
from ..resources.common import Owner
from .conditions import ConditionUpdate, Health
from .context import OperatorContext
from .reporting import report

SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=CommonStatus)

logger = logging.getLogger(__name__)


@dataclass
class Reconcile:
    """One pass over one object: kopf's views of it, the operator's context, and its owner."""

    body: kopf.Body
    meta: kopf.Meta
    status: kopf.Status
    patch: kopf.Patch
    context: OperatorContext
    owner: Owner
    outcomes: list[str]
    announced: set[str] = field(default_factory=set)
    """Reasons of the Events this pass posted (`audit.record`): `report` posts no second
    Event for a transition a decision already told, e.g. a rollback."""
    recheck: float | None = None
    """Seconds until this object wants another pass though nothing changes; None: none."""

    @property
    def generation(self) -> int | None:
        return self.meta.get("generation")

    def previous(self, model: type[StatusT]) -> StatusT:
        """The status as the operator last wrote it, read back through its model.

        A status that no longer validates (written by an older operator, or edited by hand)
        reads as empty: the pass then rebuilds it from the cluster and Label Studio.
        """
        try:
            return model.model_validate(dict(self.status))
        except pydantic.ValidationError as error:
            logger.warning("%s %s: ignoring an invalid status: %s", *self._who(), error)
            return model()

    def write(self, update: ApiModel) -> None:
        """Merge the fields set on `update` (a partial status model) into the status patch.

        A field set to None is written as null, which clears it.
        """
        self.patch.status.update(update.model_dump(by_alias=True, exclude_unset=True, mode="json"))

    def report(self, health: Health, extra: Iterable[ConditionUpdate] = ()) -> None:
        """Conclude the pass: observedGeneration, conditions, and an Event on a transition."""
        report(
            self.body,
            self.status,
            self.patch,
            health,
            self.generation,
            extra=extra,
            announced=self.announced,
        )
        self.outcomes.append(health.state)

    def recheck_in(self, seconds: float) -> None:
        """Ask for another pass after `seconds` at the latest (the soonest request wins)."""
        self.recheck = seconds if self.recheck is None else min(self.recheck, seconds)

    def _who(self) -> tuple[str, str]:
        return self.owner.kind, f"{self.owner.namespace}/{self.owner.name}"


InvalidHandler = Callable[[Reconcile, str], None]


def stalled_invalid(run: Reconcile, message: str) -> None:
    """The default answer to a spec the models refuse: Stalled, with the field named."""
    run.report(Health("stalled", "InvalidSpec", message))


def reconciler(
    kind: Kind, spec_type: type[SpecT], *, on_invalid: InvalidHandler = stalled_invalid
) -> Callable[[Callable[[Reconcile, SpecT], None]], Callable[..., float | None]]:
    """Turn `handler(run, spec)` into a pass over one object of `kind`, called with kopf's
    keyword arguments and returning `Reconcile.recheck` (see the module docstring)."""

    def decorate(handler: Callable[[Reconcile, SpecT], None]) -> Callable[..., float | None]:
        @functools.wraps(handler)
        def one_pass(
            body: kopf.Body,
            meta: kopf.Meta,
            status: kopf.Status,
            patch: kopf.Patch,
            memo: kopf.Memo,
            **_: Any,
        ) -> float | None:
            with metrics.timed_reconcile(kind.kind) as outcomes:
                run = Reconcile(
                    body=body,
                    meta=meta,
                    status=status,
                    patch=patch,
                    context=memo["context"],
                    owner=Owner.of(kind.kind, meta),
                    outcomes=outcomes,
                )
                try:
                    spec = parse_manifest(body).spec
                except ManifestError as error:
                    on_invalid(run, str(error))
                    return run.recheck
                if not isinstance(spec, spec_type):  # parse_manifest chose by body["kind"]
                    raise TypeError(f"{kind.kind} handler got a {type(spec).__name__}")
                handler(run, spec)
                return run.recheck

        return one_pass

    return decorate
