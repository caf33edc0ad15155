"""What every handler shares: the API door and the operator's settings (kopf's `memo`)."""

from __future__ import annotations

from dataclasses import dataclass

from .kube import Kube


@dataclass(frozen=True)
class OperatorConfig:
    """Settings from the command line (`labelloop operator --help`)."""

    trainer_image: str = "ghcr.io/labelloop/trainer:0.1.0"
    """Image of FineTuneJob pods and prelabel servers, unless a spec names one."""
    trainer_service_account: str | None = None
    """ServiceAccount of training pods (lets the trainer report progress on its status)."""


@dataclass(frozen=True)
class OperatorContext:
    kube: Kube
    config: OperatorConfig
