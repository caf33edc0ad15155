"""`python -m labelloop_trainer export|train|evaluate|serve`.

`train --config JOB.json` is the form the operator's Job runs (docs/trainer-contract.md);
`train --data … --base-model … --output …` is the same run from flags, for a person at a
workstation. `export` writes a Label Studio project's annotations up to a cut-off as a
file `train --data` reads. stdout carries only the answer (the file or version directory
written, or the evaluation's JSON), so scripts can read it; progress and errors go to
stderr. Expected
failures exit with the contract's codes: 2 bad input, 3 the version exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labelloop_trainer.errors import BadInputError, TrainerError
from labelloop_trainer.training import scores
from labelloop_trainer.training import settings as cfgmod
from labelloop_trainer.training.settings import DEFAULT_FIELDS, TrainConfig


def _batch_size(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a positive integer or 'auto'") from None


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="labelloop_trainer", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    h = cfgmod.Hyperparameters()
    lora = cfgmod.LoraSettings()

    export = commands.add_parser(
        "export",
        help="a Label Studio project's annotations as a JSONL file (token: $LABEL_STUDIO_API_KEY)",
    )
    export.add_argument("--url", required=True, help="the Label Studio server")
    export.add_argument("--project-id", type=int, required=True)
    export.add_argument(
        "--last-annotation-id", type=int, help="the cut-off: the last annotation included"
    )
    export.add_argument("--output", type=Path, required=True, help="the JSONL file to write")

    train = commands.add_parser("train", help="fine-tune a LoRA adapter into a new version")
    train.add_argument("--config", type=Path, help="the job file (contract form); no other flags")
    train.add_argument("--data", type=Path, help="JSON, JSONL or CSV file of labelled examples")
    train.add_argument("--text-field", help="field holding the text (default: text)")
    train.add_argument("--label-field", help="field holding the label(s) or spans")
    train.add_argument("--task-type", default="single-label", help="single-label|multi-label|ner")
    train.add_argument("--labels", type=_names, help="allowed labels, comma-separated")
    train.add_argument(
        "--label-config",
        type=Path,
        help="Label Studio label config XML file (default for an export: its manifest's)",
    )
    train.add_argument("--base-model", type=Path, help="local directory of the base model")
    train.add_argument("--output", type=Path, help="directory that holds the versions")
    train.add_argument("--model-version", help="version name (default: derived from the data)")
    train.add_argument("--learning-rate", type=float, default=h.learning_rate)
    train.add_argument("--lr-scheduler", default=h.lr_scheduler, choices=cfgmod.SCHEDULERS)
    train.add_argument("--warmup-ratio", type=float, default=h.warmup_ratio)
    train.add_argument("--epochs", type=int, default=h.epochs)
    train.add_argument("--batch-size", type=_batch_size, default=None, help="integer or auto")
    train.add_argument("--gradient-accumulation-steps", type=int, default=1)
    train.add_argument("--weight-decay", type=float, default=h.weight_decay)
    train.add_argument("--max-seq-length", type=int, default=h.max_sequence_length)
    train.add_argument("--seed", type=int, default=h.seed)
    train.add_argument("--eval-split", type=float, default=h.eval_split)
    train.add_argument("--patience", type=int, default=h.patience)
    train.add_argument("--monitor", default=h.monitor, help="early-stopping metric")
    train.add_argument("--lora-r", type=int, default=lora.r)
    train.add_argument("--lora-alpha", type=int, default=lora.alpha)
    train.add_argument("--lora-dropout", type=float, default=lora.dropout)
    train.add_argument("--target-modules", type=_names, default=(), help="comma-separated")
    _evaluation_flags(train)
    train.add_argument("--promotion-metric", help="gate metric (enables the gate)")
    train.add_argument("--promotion-minimum", type=float, default=0.0)
    train.add_argument("--no-must-improve", action="store_true", help="gate on the minimum only")

    evaluate = commands.add_parser("evaluate", help="score a version on a labelled file")
    evaluate.add_argument("--model", type=Path, required=True, help="a version directory")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--text-field")
    evaluate.add_argument("--label-field")
    evaluate.add_argument("--base-model", type=Path, help="override the base model directory")
    _evaluation_flags(evaluate)

    from labelloop_trainer.serving import serve  # the prelabel server (serving/serve.py)

    serve.add_parser(commands)
    return top


def _evaluation_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        help="extra metric: a name or a 'module:function' plug-in (repeatable)",
    )
    command.add_argument("--previous", type=Path, help="the active version, for mustImprove")


def config_from_flags(args: argparse.Namespace) -> TrainConfig:
    """The training configuration of the flag form."""
    for flag in ("data", "base_model", "output"):
        if getattr(args, flag) is None:
            raise BadInputError(f"train: --{flag.replace('_', '-')} is required without --config")
    task_type = cfgmod.parse_task_type(args.task_type)
    labels = args.labels
    text_default, label_default = DEFAULT_FIELDS[task_type]
    xml, source = None, None
    if args.label_config is not None:
        try:
            xml = args.label_config.read_text(encoding="utf-8")
        except OSError as err:
            raise BadInputError(f"--label-config: cannot read {args.label_config}") from err
    else:
        xml, source = _export_manifest(args.data)
    if xml is not None:
        task_type, text_default, labels = cfgmod.label_schema_settings(xml)
        label_default = DEFAULT_FIELDS[task_type][1]
    promotion = None
    if args.promotion_metric:
        promotion = cfgmod.Promotion(
            args.promotion_metric, args.promotion_minimum, not args.no_must_improve
        )
    return cfgmod.validated(
        TrainConfig(
            data=cfgmod.DataSettings(
                path=args.data,
                text_field=args.text_field or text_default,
                label_field=args.label_field or label_default,
                task_type=task_type,
                labels=labels,
                source=source,
            ),
            base_model_dir=args.base_model,
            output_dir=args.output,
            model_version=args.model_version,
            hyper=cfgmod.Hyperparameters(
                learning_rate=args.learning_rate,
                lr_scheduler=args.lr_scheduler,
                warmup_ratio=args.warmup_ratio,
                epochs=args.epochs,
                batch_size=args.batch_size,
                gradient_accumulation_steps=args.gradient_accumulation_steps,
                weight_decay=args.weight_decay,
                max_sequence_length=args.max_seq_length,
                seed=args.seed,
                eval_split=args.eval_split,
                patience=args.patience,
                monitor=args.monitor,
            ),
            lora=cfgmod.LoraSettings(
                args.lora_r, args.lora_alpha, args.lora_dropout, tuple(args.target_modules)
            ),
            metrics=(*TrainConfig.metrics, *(args.metrics or ())),
            promotion=promotion,
            previous_version_dir=args.previous,
        )
    )


def _export_manifest(data: Path) -> tuple[str | None, dict[str, Any] | None]:
    """The label config and source of an `export` file, from the manifest beside it."""
    from labelloop_trainer.training.export import dataset_source, manifest_path

    try:
        manifest = json.loads(manifest_path(data).read_text(encoding="utf-8"))
        return str(manifest["labelConfig"]), dataset_source(manifest, data)
    except (OSError, ValueError, TypeError, KeyError):
        return None, None  # not an export's file


def run_train(cfg: TrainConfig) -> Path | None:
    """Train, judge the gate and write the version; the version directory on rank 0."""
    from labelloop_trainer.training.distributed import barrier, started
    from labelloop_trainer.training.export import exports_dir
    from labelloop_trainer.training.gate import judge, previous_metrics
    from labelloop_trainer.training.kube_status import reporter
    from labelloop_trainer.training.loop import checkpoint_dir, train
    from labelloop_trainer.training.output import write_result, write_version
    from labelloop_trainer.training.progress import Progress

    previous = previous_metrics(cfg.previous_version_dir)
    with started() as ctx:
        progress = Progress(enabled=ctx.is_main)
        if ctx.is_main:
            progress.status = reporter(cfg.job, lambda m: progress.event("warning", message=m))
        try:
            outcome = train(cfg, ctx, progress)
        finally:
            progress.close()
        if not ctx.is_main:
            barrier(ctx)
            return None
        scalars = scores.scalars(outcome.metrics)
        verdict = judge(cfg.promotion, scalars, previous)
        resolved = cfg.to_json() | {"model_version": outcome.version}
        resolved["hyper"]["batch_size"] = outcome.batch_size
        directory = write_version(
            cfg.output_dir,
            outcome.version,
            outcome.model,
            outcome.tokenizer,
            {
                "label_map.json": {
                    "taskType": cfg.data.task_type.value,
                    "labels": outcome.manifest["labels"],
                    "outputNames": list(outcome.output_names),
                    "textField": cfg.data.text_field,
                    "labelField": cfg.data.label_field,
                    "maxSequenceLength": cfg.hyper.max_sequence_length,
                },
                "metrics.json": {
                    "metrics": outcome.metrics,
                    "promotion": verdict.to_json(),
                    "bestEpoch": outcome.best_epoch,
                    "epochsRun": outcome.epochs_run,
                    "earlyStopped": outcome.early_stopped,
                    "history": outcome.history,
                    "training": {
                        "batchSize": outcome.batch_size,
                        "processes": ctx.world,
                        "seconds": round(outcome.train_seconds, 3),
                        "samplesPerSecond": round(outcome.samples_per_second, 3),
                        "resumedFromEpoch": outcome.resumed_from_epoch,
                    },
                },
                "dataset.json": outcome.manifest,
                "config.json": resolved,
                "base_model.json": {
                    "dir": str(cfg.base_model_dir.resolve()),
                    "modelType": outcome.model_type,
                },
            },
        )
        _remove_work_dir(checkpoint_dir(cfg.output_dir, outcome.version))
        _remove_work_dir(exports_dir(cfg.output_dir, outcome.version))
        write_result(
            {
                "modelVersion": outcome.version,
                "artifactUri": f"{cfg.artifact_uri.rstrip('/')}/{outcome.version}"
                if cfg.artifact_uri
                else str(directory.resolve()),
                "dataset": {"count": outcome.manifest["count"], "hash": outcome.manifest["hash"]},
                "metrics": _result_metrics(cfg, scalars),
                "bestEpoch": outcome.best_epoch,
                "earlyStopped": outcome.early_stopped,
                "promotion": verdict.to_json(),
            }
        )
        barrier(ctx)
        return directory


def _remove_work_dir(directory: Path) -> None:
    """Drop a finished run's checkpoints or export, and `.checkpoints/` or `.exports/` once
    no run has any."""
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):
        directory.parent.rmdir()


def _result_metrics(cfg: TrainConfig, scalars: dict[str, float]) -> dict[str, float]:
    """The requested metrics, the contract's `accuracy` and `macro_f1`, and plug-in values."""
    built_in, _ = scores.requested(cfg.metrics)
    wanted = {*built_in, "accuracy", "macro_f1", "eval_loss"}
    return {k: round(v, 6) for k, v in scalars.items() if k in wanted or k not in scores.BUILT_IN}


def run_export(args: argparse.Namespace) -> Path:
    """Export a project's annotations up to the cut-off; the file written."""
    from labelloop_trainer.training.export import export, token_from_env

    source = cfgmod.Source(args.url, args.project_id, args.last_annotation_id)
    manifest = export(source, token_from_env(), args.output)
    print(
        json.dumps(
            {
                "event": "exported",
                **{k: manifest[k] for k in ("count", "lastAnnotationId", "ties", "hash")},
                "skippedAnnotations": manifest["skippedAnnotations"],
            }
        ),
        file=sys.stderr,
    )
    output: Path = args.output
    return output


def run_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Score a version; with `--previous`, also judge its own gate against that version."""
    from labelloop_trainer.training.evaluate import evaluate_version
    from labelloop_trainer.training.gate import judge, previous_metrics

    _, plugins = scores.requested(args.metrics or ())
    result = evaluate_version(
        args.model,
        args.data,
        args.text_field,
        args.label_field,
        plugins=plugins,
        base_model_dir=args.base_model,
    )
    if args.previous is not None:
        trained = json.loads((args.model / "config.json").read_text(encoding="utf-8"))
        gate = trained.get("promotion") or {}
        promotion = cfgmod.Promotion(
            gate.get("metric", "f1"), gate.get("minimum", 0.0), gate.get("must_improve", True)
        )
        result["promotion"] = judge(
            promotion, scores.scalars(result), previous_metrics(args.previous)
        ).to_json()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; the exit code follows the contract."""
    args = parser().parse_args(argv)
    # Loading reports ("classifier weights newly initialised") and download bars are noise
    # here: the head is new by design and nothing is ever downloaded.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        if args.command == "export":
            print(run_export(args))
            return 0
        if args.command == "serve":
            from labelloop_trainer.serving import serve

            return serve.run(args)
        if args.command == "train":
            if args.config is not None:
                if args.data or args.base_model or args.output:
                    raise BadInputError(
                        "train: --config carries the whole job; drop the other flags"
                    )
                cfg = cfgmod.load_job(args.config)
            else:
                cfg = config_from_flags(args)
            directory = run_train(cfg)
            if directory is not None:
                print(directory)
        else:
            print(json.dumps(run_evaluate(args)))
    except TrainerError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0
