"""What every handler shares: the API door and the operator's settings (kopf's `memo`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ..api.base import PodScheduling
from ..resources.network import PolicyPeers
from ..steps.prelabel import AnswerCache
from ..steps.webhook import DEFAULT_REPLAY_WINDOW_SECONDS, HookSecrets
from .kube import Kube

# A failed reconcile is retried this soon (kopf's default is a minute); the timers re-run
# every reconcile anyway, so this only shortens the wait after an API hiccup.
RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class OperatorConfig:
    """Settings from the command line (`labelloop operator --help`)."""

    trainer_image: str = "ghcr.io/labelloop/trainer:0.1.0"
    """Image of FineTuneJob pods and prelabel servers, unless a spec names one."""
    trainer_cluster_role: str | None = None
    """ClusterRole bound to the trainer's ServiceAccount in each namespace with FineTuneJobs,
    so training pods can report live progress on their FineTuneJob's status (the chart
    installs a narrow one). Unset: pods run as the namespace's default ServiceAccount."""
    webhook_listen: str | None = None
    """`host:port` of the webhook receiver; None runs none (projects rely on the timer)."""
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
    answers: AnswerCache = field(default_factory=AnswerCache)
    """The prelabel servers' answers, remembered between project passes (`steps.prelabel`)."""
    webhook_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    """Drawn at start and kept in memory only: the key of each project's webhook secret."""

    @property
    def webhook_secrets(self) -> HookSecrets:
        return HookSecrets(self.webhook_key, self.config.webhook_replay_window_seconds)
