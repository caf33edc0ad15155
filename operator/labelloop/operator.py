"""Running the kopf operator: settings, credentials and the shared context."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import kopf

from . import controllers, metrics
from .controllers.context import OperatorConfig, OperatorContext
from .controllers.kube import Kube, load_credentials

PREFIX = "labelloop.io"
# What makes a --namespace a pattern for kopf (globs, negations, lists).
GLOB_CHARACTERS = set("*?!,")


def run(
    config: OperatorConfig, namespaces: list[str], liveness: str | None, log_format: str = "json"
) -> None:
    """Run until interrupted. No namespaces means the whole cluster."""

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # Handler progress in annotations, never in status: the CRDs' structural status
        # schemas would silently drop kopf's own fields.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.INFO
        # Many short sync handlers; kopf's default pool would queue them behind each other.
        settings.execution.max_workers = 16
        settings.watching.server_timeout = 60
        # Named namespaces only (no globs): the chart then grants Roles in those namespaces and
        # nothing cluster-wide, so kopf must not watch CRDs and namespaces to follow them.
        settings.scanning.disabled = bool(namespaces) and not any(
            set(n) & GLOB_CHARACTERS for n in namespaces
        )
        memo["context"] = OperatorContext(kube=Kube(load_credentials()), config=config)
        if config.metrics_listen:
            metrics.serve(config.metrics_listen)

    assert controllers  # the import registers the handlers
    release_on_delete(kopf.get_default_registry())
    formats = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN}
    kopf.configure(verbose=False, log_format=formats[log_format], log_prefix=False)
    # Timers reconcile every few seconds; a line per successful run would drown the rest.
    # Failures are still logged, and transitions are posted as Events.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )


def release_on_delete(registry: kopf.OperatorRegistry) -> None:
    """Let objects go without the operator: no finalizer for the periodic reconciles.

    kopf puts a finalizer on every object a timer watches, so that it can stop the timer
    before the object goes. Nothing of labelloop's runs at deletion (children go with their
    owner through the garbage collector), and with such a finalizer an object, and so its
    namespace, can never be deleted while the operator is away: `helm uninstall` and then
    `kubectl delete namespace` would hang forever. kopf stops a timer when it sees its object
    deleted anyway, and removes the finalizer from objects that still carry one.
    """
    spawning = registry._spawning
    spawning._handlers = [
        dataclasses.replace(handler, requires_finalizer=False)
        for handler in spawning.get_all_handlers()
    ]
