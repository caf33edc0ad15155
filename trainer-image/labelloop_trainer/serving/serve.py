"""`python -m labelloop_trainer serve`: the prelabel server, Label Studio's ML backend.

`serve --model DIR` serves a fine-tuned version directory (what the operator's
PrelabelService runs, readiness on `GET /health`); `serve --zero-shot --base-model DIR`
serves round 0's zero-shot prelabeler from the base encoder. The protocol is in
`app.py`, the HTTP plumbing in `server.py`, the model chain in `chain.py`, the batching in
`request_batcher.py`, the CPU fast path in `fast_path.py` and the Prometheus metrics in
`telemetry.py`; this module is only the command line and imports them when the command runs,
so `train` does not pay for LangChain and the server.

SIGTERM and SIGINT stop it gracefully: no new connections, the requests in flight answered,
then exit 0.

Once listening, one line goes to stdout, `listening on http://HOST:PORT`, so a caller that
asked for port 0 learns the port. Basic auth credentials are best given by environment
(`LABELLOOP_BASIC_AUTH_USER`, `LABELLOOP_BASIC_AUTH_PASSWORD`): flags show in `ps`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from labelloop_trainer.errors import BadInputError

if TYPE_CHECKING:
    from labelloop.api.labelconfig import LabelSchema
    from labelloop_trainer.serving.chain import Scorer

USER_ENV = "LABELLOOP_BASIC_AUTH_USER"
PASSWORD_ENV = "LABELLOOP_BASIC_AUTH_PASSWORD"

log = logging.getLogger("labelloop_trainer.serving.serve")


def add_parser(commands: Any) -> None:
    """Add the `serve` subcommand to the CLI's subparsers."""
    serve = commands.add_parser("serve", help="serve a version to Label Studio (ML backend)")
    what = serve.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="a model version directory")
    what.add_argument(
        "--zero-shot", action="store_true", help="the zero-shot prelabeler of --base-model"
    )
    serve.add_argument(
        "--base-model", type=Path, help="the base encoder (zero-shot) or an override (--model)"
    )
    serve.add_argument(
        "--label-config", type=Path, help="label config XML for requests that carry none"
    )
    serve.add_argument(
        "--label-descriptions", type=Path, help="zero-shot: JSON object label → description"
    )
    serve.add_argument("--zero-shot-temperature", type=float, default=None)
    serve.add_argument("--model-version", help="override the served version's name")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=9090, help="0 picks a free port")
    serve.add_argument("--max-batch", type=int, help="tasks per request (default 10000)")
    serve.add_argument("--batch-size", type=int, help="tasks per forward pass (default 32)")
    serve.add_argument(
        "--batch-wait-ms",
        type=float,
        help="how long a batch waits for more tasks after its first (default 5)",
    )
    serve.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available)")
    serve.add_argument(
        "--runtime",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        default="auto",
        help="the forward pass: auto is ONNX Runtime on a CPU (onnx-int8 adds int8 weights), "
        "PyTorch on a GPU; where ONNX Runtime cannot serve the model, PyTorch",
    )
    serve.add_argument(
        "--threads",
        type=int,
        help="CPU threads per forward pass (default: torch's, one per core of the host, "
        "which oversubscribes a pod with a CPU limit)",
    )
    serve.add_argument("--basic-auth-user", default=os.environ.get(USER_ENV))
    serve.add_argument(
        "--basic-auth-password",
        default=os.environ.get(PASSWORD_ENV),
        help=f"prefer ${PASSWORD_ENV}: flags show in the process list",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))


def load_scorer(args: argparse.Namespace) -> Scorer:
    """The fine-tuned version or the zero-shot prelabeler the flags ask for."""
    if args.zero_shot:
        from labelloop_trainer.serving.zeroshot import ZeroShotScorer
        from labelloop_trainer.training.zeroshot import DEFAULT_TEMPERATURE

        if args.base_model is None:
            raise BadInputError("serve: --zero-shot needs --base-model")
        return ZeroShotScorer(
            args.base_model,
            _descriptions(args.label_descriptions),
            temperature=args.zero_shot_temperature or DEFAULT_TEMPERATURE,
            device=args.device,
            model_version=args.model_version,
            runtime=args.runtime,
        )
    if args.label_descriptions is not None or args.zero_shot_temperature is not None:
        raise BadInputError(
            "serve: --label-descriptions and --zero-shot-temperature need --zero-shot"
        )
    from labelloop_trainer.serving.version_scorer import VersionScorer

    return VersionScorer.from_directory(
        args.model, args.base_model, args.device, args.model_version, args.runtime
    )


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or SIGINT."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from labelloop_trainer.serving.app import BasicAuth, Limits
    from labelloop_trainer.serving.server import build_server

    given = {"max_tasks": args.max_batch, "batch_size": args.batch_size}
    for name, value in given.items():
        if value is not None and value < 1:
            flag = "--max-batch" if name == "max_tasks" else "--batch-size"
            raise BadInputError(f"serve: {flag} must be at least 1")
    if args.batch_wait_ms is not None:
        given["batch_wait_s"] = args.batch_wait_ms / 1000
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    if (args.basic_auth_user is None) != (args.basic_auth_password is None):
        raise BadInputError("serve: basic auth needs both a user and a password")
    auth = (
        BasicAuth(args.basic_auth_user, args.basic_auth_password)
        if args.basic_auth_user is not None
        else None
    )
    if args.threads is not None:
        if args.threads < 1:
            raise BadInputError("serve: --threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    scorer = load_scorer(args)
    schema = _label_config(args.label_config, scorer)
    server = build_server(
        scorer, args.host, args.port, limits=limits, auth=auth, default_schema=schema
    )
    # uvicorn catches SIGTERM and SIGINT while it serves, stops gracefully, then raises the
    # signal again for the handler found before it: this one, so that the stop it asked for
    # ends in exit 0, not in death by the signal's default action.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    log.info(
        "serving %s (%s) on %s; %d tasks per forward pass, basic auth %s",
        scorer.model_version,
        scorer.task_type.value,
        server.url,
        limits.batch_size,
        "on" if auth else "off",
    )
    print(f"listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _stopped(signum: int, _: FrameType | None) -> None:
    log.info("signal %d: stopped", signum)


def _descriptions(path: Path | None) -> dict[str, str] | None:
    if path is None:
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"--label-descriptions: cannot read {path}: {err}") from err
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
    ):
        raise BadInputError("--label-descriptions: must be a JSON object of label → description")
    return loaded


def _label_config(path: Path | None, scorer: Scorer) -> LabelSchema | None:
    from labelloop.api.labelconfig import LabelConfigError, parse_label_config

    if path is None:
        return None
    try:
        schema = parse_label_config(path.read_text(encoding="utf-8"))
        scorer.check(schema)
    except OSError as err:
        raise BadInputError(f"--label-config: cannot read {path}: {err}") from err
    except (LabelConfigError, ValueError) as err:
        raise BadInputError(f"--label-config: {err}") from err
    return schema
