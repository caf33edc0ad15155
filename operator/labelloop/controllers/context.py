"""What every handler shares: the API door and the operator's settings (kopf's `memo`)."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import Executor
from dataclasses import dataclass, field

from ..api.base import PodScheduling
from ..labelstudio.pool import DEFAULT_REQUESTS_PER_SERVER, LabelStudioClients
from ..resources.network import PolicyPeers
from ..steps.prelabel import AnswerCache
from ..steps.webhook import DEFAULT_REPLAY_WINDOW_SECONDS, HookSecrets
from .kube import Kube
from .label_studio_poll import LabelStudioPoll
from .wakeups import Wakeups

DEFAULT_RESYNC_SECONDS = 600
DEFAULT_LABEL_STUDIO_POLL_SECONDS = 60


@dataclass(frozen=True)
class OperatorConfig:
    """Settings from the command line (`labelloop operator --help`)."""

    trainer_image: str = "ghcr.io/labelloop/trainer:0.1.0"
    """Image of FineTuneJob pods and prelabel servers, unless a spec names one."""
    trainer_cluster_role: str | None = None
    """ClusterRole bound to the trainer's ServiceAccount in each namespace with FineTuneJobs,
    so training pods can report live progress on their FineTuneJob's status (the chart
    installs a narrow one). Unset: pods run as the namespace's default ServiceAccount."""
    resync_seconds: int = DEFAULT_RESYNC_SECONDS
    """How often every object is reconciled when nothing woke it (`controllers.driver`): a
    safety net for lost watch events; changes wake reconciles at once."""
    label_studio_poll_seconds: int = DEFAULT_LABEL_STUDIO_POLL_SECONDS
    """How often each Label Studio server is asked which projects changed
    (`controllers.label_studio_poll`), the fallback for webhooks that did not come."""
    label_studio_requests_per_server: int = DEFAULT_REQUESTS_PER_SERVER
    """The most requests in flight to one Label Studio server (`labelstudio.pool`)."""
    webhook_listen: str | None = None
    """`host:port` of the webhook receiver; None runs none (projects rely on polling)."""
    webhook_url: str | None = None
    """Base URL at which Label Studio reaches the receiver; None registers no webhooks."""
    webhook_tls: tuple[str, str] | None = None
    """Files of the receiver's certificate (chain) and private key, PEM; None serves HTTP."""
    webhook_replay_window_seconds: int = DEFAULT_REPLAY_WINDOW_SECONDS
    """How long a webhook secret is current (`steps.webhook.HookSecrets`)."""
    service_cidrs: tuple[str, ...] = ("10.96.0.0/12",)
    """The cluster's Service ranges (kubeadm's default): a managed Label Studio may call these
    private addresses (prelabel services, the webhook receiver) and no others."""
    workload_scheduling: PodScheduling | None = None
    """Node selector and tolerations for the pods it creates that need no GPU (Label Studio,
    prelabel servers, CPU training), e.g. to keep them on nodes that run real containers."""
    network_policies: PolicyPeers | None = None
    """The operator's own pods (and metrics scrapers): with them, each PrelabelService of a
    managed project gets a NetworkPolicy that lets only those pods and the project's Label
    Studio reach its servers (`resources.network`); None creates none."""
    metrics_listen: str | None = None
    """`host:port` of the Prometheus endpoint (`labelloop.metrics`); None serves none."""


@dataclass(frozen=True)
class OperatorContext:
    kube: Kube
    config: OperatorConfig
    label_studio: LabelStudioClients
    """The Label Studio clients, one per server and token (`labelstudio.pool`)."""
    executor: Executor | None = None
    """The threads reconcile passes run in (kopf's, which the operator waits for at exit);
    None: the event loop's default."""
    wakeups: Wakeups = field(default_factory=Wakeups)
    """The reconcile loops' wake-up signals (`controllers.wakeups`)."""
    pass_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    """How many passes of each kind may run at once (`controllers.driver`), by kind."""
    label_studio_poll: LabelStudioPoll = field(default_factory=LabelStudioPoll)
    """Where each project lives in Label Studio, polled for changes."""
    answers: AnswerCache = field(default_factory=AnswerCache)
    """The prelabel servers' answers, remembered between project passes (`steps.prelabel`)."""
    webhook_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    """Drawn at start and kept in memory only: the key of each project's webhook secret."""

    @property
    def webhook_secrets(self) -> HookSecrets:
        return HookSecrets(self.webhook_key, self.config.webhook_replay_window_seconds)
