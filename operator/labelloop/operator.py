"""Running the kopf operator: settings, credentials, the shared context, and leadership.

With leader election (`election`), kopf runs only while this process holds the operator's
Lease (`labelloop.leader`): everything that acts (handlers, timers, the webhook receiver) is
kopf's or starts with it, so a standby acts on nothing. A leader that loses the Lease exits
at once; Kubernetes restarts it, and it waits as a standby.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys

import kopf

from . import controllers, metrics
from .controllers.cache import WATCHED, WatchCache
from .controllers.context import OperatorConfig, OperatorContext
from .controllers.kube import Kube, load_credentials
from .labelstudio.pool import LabelStudioClients
from .leader import route
from .leader.elector import Elector, leadership
from .leader.lease import LeaseStore, election_api_client
from .leader.policy import Election, pod_of

logger = logging.getLogger(__name__)

PREFIX = "labelloop.io"
# What makes a --namespace a pattern for kopf (globs, negations, lists).
GLOB_CHARACTERS = set("*?!,")


def run(
    config: OperatorConfig,
    namespaces: list[str],
    liveness: str | None,
    log_format: str = "json",
    election: Election | None = None,
) -> None:
    """Run until interrupted. No namespaces means the whole cluster; an `election` makes this
    process one of the operator's replicas, acting only while it leads."""
    settings = kopf.OperatorSettings()
    # Handler progress in annotations, never in status: the CRDs' structural status schemas
    # would silently drop kopf's own fields.
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

    assert controllers  # the import registers the handlers
    release_on_delete(kopf.get_default_registry())
    formats = {"json": kopf.LogFormat.JSON, "plain": kopf.LogFormat.PLAIN}
    kopf.configure(verbose=False, log_format=formats[log_format], log_prefix=False)
    # A line per handled watch event would drown the rest. Failures are still logged (once
    # per transition, controllers.driver), and transitions are posted as Events.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # httpx logs every request it makes (to Label Studio, to prelabel servers) at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Served by standbys too: a scrape sees every replica, and labelloop_leader tells which acts.
    if config.metrics_listen:
        metrics.serve(config.metrics_listen)

    def run_kopf() -> None:
        # Made here, before kopf starts, rather than in a startup handler: every handler
        # (the startup ones of the receiver and the poller included) finds it in the memo.
        context = OperatorContext(
            kube=Kube(load_credentials(), WatchCache(WATCHED)),
            config=config,
            label_studio=LabelStudioClients(config.label_studio_requests_per_server),
            executor=settings.execution.executor,
        )
        try:
            kopf.run(
                settings=settings,
                memo=kopf.Memo(context=context),
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                liveness_endpoint=liveness,
            )
        finally:
            # kopf returns while sync handlers it started may still run in its threads; they
            # must be done before the Lease is released and another replica starts acting.
            settings.execution.executor.shutdown(wait=True, cancel_futures=True)

    if election is None:
        metrics.LEADER.set(1)
        run_kopf()
        return
    load_credentials()  # the election's client starts from them
    api_client = election_api_client()
    store = LeaseStore(api_client, election.namespace, election.name)
    elector = Elector(store, election.identity, election.timing)
    on_leading = None
    if election.service and election.pod_ip and config.webhook_listen:
        # The Service's port name, as the chart names it, to this pod's receiver port.
        ports = {"webhook": int(config.webhook_listen.rpartition(":")[2])}
        manifest = route.endpoint_slice(
            election.namespace, election.service, pod_of(election.identity), election.pod_ip, ports
        )
        on_leading = functools.partial(route.publish, api_client, manifest)
    with leadership(elector, liveness, on_lost=_exit_at_once, on_leading=on_leading):
        run_kopf()


def _exit_at_once(reason: str) -> None:
    """A leader that lost its Lease stops acting now, not after kopf's graceful shutdown:
    another replica may be taking over. Kubernetes restarts the container as a standby."""
    logger.critical("leadership lost (%s): exiting", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    os._exit(1)


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
