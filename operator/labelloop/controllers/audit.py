"""The audit trail: every decision that changes the loop, told three ways at once.

A round started, a promotion gate's verdict, a rollout started or stepped, a version promoted
or rolled back, annotators moved between tiers, a quality rule newly broken: each is a
`Decision`, and `record` makes it
- a Kubernetes Event on the object (reason = the decision, message with the figures),
- one structured log line (`labelloop.audit`; with `--log-format json` its fields are keys of
  the line: decision, object (kind, namespace, name), project, outcome, figures),
- a count in `labelloop_decisions_total`.

What goes in is what status already shows (counts, versions, metrics, shares, tiers): never
a token, password or webhook secret (a cluster test scans logs, Events and status for them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import kopf

from .. import metrics
from .handler import Reconcile
from .status_metrics import project_of

Figure = str | int | float | bool | None
logger = logging.getLogger("labelloop.audit")


@dataclass(frozen=True)
class Decision:
    reason: str
    """What was decided, in CamelCase: the Event's reason (listed in `metrics.DECISIONS`)."""
    message: str
    """For a person, with the figures that led to it."""
    figures: Mapping[str, Figure] = field(default_factory=dict)
    """The same figures, for machines (the log line's `figures`)."""
    outcome: str = ""
    """A bounded qualifier that dashboards count by, e.g. a rollback's cause."""
    warning: bool = False
    """Post a Warning Event (something went wrong) rather than a Normal one."""


def record(run: Reconcile, decision: Decision) -> None:
    """Post, log and count `decision` about the object `run` reconciles."""
    owner = run.owner
    project = project_of(owner.kind, owner.name, run.body.get("spec") or {})
    post = kopf.warn if decision.warning else kopf.info
    post(run.body, reason=decision.reason, message=decision.message)
    run.announced.add(decision.reason)
    logger.log(
        logging.WARNING if decision.warning else logging.INFO,
        "%s %s/%s: %s: %s",
        owner.kind,
        owner.namespace,
        owner.name,
        decision.reason,
        decision.message,
        extra={
            "decision": decision.reason,
            # Not `name`: a log record's own attribute (the logger's name).
            "object": {"kind": owner.kind, "namespace": owner.namespace, "name": owner.name},
            "project": project,
            "outcome": decision.outcome,
            "figures": dict(decision.figures),
        },
    )
    metrics.DECISIONS.labels(
        owner.kind, owner.namespace, project, decision.reason, decision.outcome
    ).inc()
