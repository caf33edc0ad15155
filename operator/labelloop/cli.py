"""The `labelloop` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .controllers.context import OperatorConfig


def _crds(args: argparse.Namespace) -> int:
    from .api.crd import render_crds

    rendered = render_crds()
    for output in args.output or [Path("crds")]:
        output.mkdir(parents=True, exist_ok=True)
        for name, text in rendered.items():
            path = output / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                print(f"wrote {path}")
        for path in output.glob("*.yaml"):
            if path.name not in rendered:
                path.unlink()
                print(f"removed {path}")
    return 0


def _operator(args: argparse.Namespace) -> int:
    from .controllers.context import OperatorConfig
    from .operator import run

    config = OperatorConfig(
        trainer_image=args.trainer_image,
        trainer_cluster_role=args.trainer_cluster_role,
        webhook_listen=args.webhook_listen or None,
        webhook_url=args.webhook_url or None,
    )
    run(
        config,
        namespaces=args.namespace,
        liveness=args.liveness or None,
        log_format=args.log_format,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelloop",
        description="Closes the loop between Label Studio annotation and LoRA fine-tuning.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    crds = commands.add_parser("crds", help="write the CustomResourceDefinitions")
    crds.add_argument(
        "--output",
        type=Path,
        action="append",
        help="directory to write them to (repeatable; default crds)",
    )
    crds.set_defaults(run=_crds)

    operator = commands.add_parser(
        "operator", help="run the operator against the current kubeconfig or in-cluster"
    )
    operator.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    defaults = OperatorConfig()
    operator.add_argument(
        "--trainer-image",
        default=defaults.trainer_image,
        help=f"image of training and prelabel pods (default {defaults.trainer_image})",
    )
    operator.add_argument(
        "--trainer-cluster-role",
        default=defaults.trainer_cluster_role,
        help="ClusterRole bound to training pods' ServiceAccount (for progress reports)",
    )
    # Environment defaults let a supervisor (or a test) configure the receiver without flags.
    operator.add_argument(
        "--webhook-listen",
        default=os.environ.get("LABELLOOP_WEBHOOK_LISTEN", ""),
        help="host:port of the webhook receiver, e.g. 0.0.0.0:8081 "
        "(default $LABELLOOP_WEBHOOK_LISTEN; empty runs none)",
    )
    operator.add_argument(
        "--webhook-url",
        default=os.environ.get("LABELLOOP_WEBHOOK_URL", ""),
        help="base URL Label Studio posts webhooks to, e.g. http://labelloop.labelloop-system"
        ".svc:8081 (default $LABELLOOP_WEBHOOK_URL; empty registers none)",
    )
    operator.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint (default http://0.0.0.0:8080/healthz; empty disables it)",
    )
    operator.add_argument(
        "--log-format", choices=["json", "plain"], default="json", help="log format (default json)"
    )
    operator.set_defaults(run=_operator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
