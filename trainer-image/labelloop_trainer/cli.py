"""`python -m labelloop_trainer export|train|evaluate|serve`.

`train --config JOB.json` is the form the operator's Job runs (docs/trainer-contract.md);
`train --data … --base-model … --output …` is the same run from flags, for a person at a
workstation. `export` writes a Label Studio project's annotations up to a cut-off as a
file `train --data` reads. stdout carries only the answer (the file or version directory
written, or the evaluation's JSON), so scripts can read it; progress and errors go to
stderr. Expected failures exit with the contract's codes: 2 bad input, 3 the version exists.

Both forms of `train` are read with the API's models (`labelloop.api`): the job file with
`JobFile`, the flags with `Hyperparameters`, `LoraSettings` and `Promotion`, whose defaults
an unset flag keeps. The commands' work lives in `training/` and `serving/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from labelloop.api import finetunejob as api
from labelloop.api.labelconfig import TaskType
from labelloop_trainer.errors import BadInputError, TrainerError, invalid
from labelloop_trainer.training import scores, settings
from labelloop_trainer.training.settings import TrainConfig

M = TypeVar("M", bound=BaseModel)


def _count_or_auto(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a positive integer or 'auto'") from None


def _names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


# The flags of `train` that set an API field, by the field's path in the API's models. Their
# defaults are None: an unset flag leaves the field to the API's default.
HYPERPARAMETER_FLAGS = {
    "learning_rate": "--learning-rate",
    "lr_scheduler": "--lr-scheduler",
    "warmup_ratio": "--warmup-ratio",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "gradient_accumulation_steps": "--gradient-accumulation-steps",
    "weight_decay": "--weight-decay",
    "max_sequence_length": "--max-seq-length",
    "seed": "--seed",
    "eval_split": "--eval-split",
    "early_stopping.patience": "--patience",
}
LORA_FLAGS = {
    "r": "--lora-r",
    "alpha": "--lora-alpha",
    "dropout": "--lora-dropout",
    "target_modules": "--target-modules",
}
PROMOTION_FLAGS = {"minimum": "--promotion-minimum", "must_improve": "--no-must-improve"}
_FLAG_TYPES: dict[str, Any] = {
    "--learning-rate": float,
    "--warmup-ratio": float,
    "--epochs": _count_or_auto,
    "--batch-size": _count_or_auto,
    "--gradient-accumulation-steps": int,
    "--weight-decay": float,
    "--max-seq-length": int,
    "--seed": int,
    "--eval-split": float,
    "--patience": int,
    "--lora-r": int,
    "--lora-alpha": int,
    "--lora-dropout": float,
    "--target-modules": _names,
}


def _api_default(model: type[BaseModel], path: str) -> Any:
    """The API's default of a field (`early_stopping.patience`: a nested one)."""
    value: Any = model()
    for name in path.split("."):
        value = getattr(value, name)
    return value


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(prog="labelloop_trainer", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

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
    for table, model in (
        (HYPERPARAMETER_FLAGS, api.Hyperparameters),
        (LORA_FLAGS, api.LoraSettings),
    ):
        for field, flag in table.items():
            default = _api_default(model, field)
            train.add_argument(
                flag,
                type=_FLAG_TYPES.get(flag, str),
                choices=get_args(api.LrScheduler) if flag == "--lr-scheduler" else None,
                help=f"default: {','.join(default) if isinstance(default, list) else default}",
            )
    train.add_argument(
        "--monitor",
        help="metric that picks the epoch kept and stops early, a plug-in's too "
        f"(default: --promotion-metric, else {api.EarlyStopping().monitored(None)})",
    )
    _evaluation_flags(train)
    train.add_argument("--promotion-metric", help="gate metric (enables the gate)")
    train.add_argument(
        "--promotion-minimum", type=float, help=f"default: {api.Promotion().minimum}"
    )
    train.add_argument(
        "--tuning-trials",
        type=int,
        help="search this many trials (spec.tuning's default space, TPE sampler); "
        "the objective is --promotion-metric, else "
        f"{api.Tuning().objective_metric(None)}",
    )
    train.add_argument(
        "--no-must-improve",
        action="store_false",
        dest="must_improve",
        default=None,
        help="gate on the minimum only",
    )

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


def _api_model(model: type[M], args: argparse.Namespace, flags: Mapping[str, str]) -> M:
    """`model` with the fields whose flag is set; an unset flag keeps the API's default."""
    fields: dict[str, Any] = {}
    for path, flag in flags.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if flag == "--no-must-improve":
            value = args.must_improve
        if value is not None:
            *parents, name = path.split(".")
            nested = fields
            for parent in parents:
                nested = nested.setdefault(parent, {})
            nested[name] = value
    # A model's own rule names its field in camelCase, the others by the field's name.
    names = {**flags, **{".".join(map(to_camel, p.split("."))): f for p, f in flags.items()}}
    try:
        return model.model_validate(fields)
    except ValidationError as err:
        raise invalid(err, names) from None


def config_from_flags(args: argparse.Namespace) -> TrainConfig:
    """The training configuration of the flag form."""
    for flag in ("data", "base_model", "output"):
        if getattr(args, flag) is None:
            raise BadInputError(f"train: --{flag.replace('_', '-')} is required without --config")
    xml, source = None, None
    if args.label_config is not None:
        try:
            xml = args.label_config.read_text(encoding="utf-8")
        except OSError as err:
            raise BadInputError(f"--label-config: cannot read {args.label_config}") from err
    else:
        xml, source = _export_manifest(args.data)
    hyper = _api_model(api.Hyperparameters, args, HYPERPARAMETER_FLAGS)
    lora = _api_model(api.LoraSettings, args, LORA_FLAGS)
    promotion = None
    if args.promotion_metric:
        gate = _api_model(api.Promotion, args, PROMOTION_FLAGS)
        promotion = settings.Promotion.from_api(gate, metric=args.promotion_metric)
    return TrainConfig(
        data=settings.data_settings(
            args.data,
            text_field=args.text_field,
            label_field=args.label_field,
            task_type=settings.parse_task_type(args.task_type),
            labels=args.labels,
            label_config=xml,
            source=source,
        ),
        base_model_dir=args.base_model,
        output_dir=args.output,
        model_version=args.model_version,
        # The epoch kept is the gate's pick, as in a job file: --monitor, else the gate's metric.
        hyper=settings.Hyperparameters.from_api(
            hyper, monitor=args.monitor or args.promotion_metric
        ),
        lora=settings.LoraSettings.from_api(lora),
        metrics=(*api.Evaluation().metrics, *(args.metrics or ())),
        promotion=promotion,
        previous_version_dir=args.previous,
        tuning=_tuning(args),
    )


def _tuning(args: argparse.Namespace) -> settings.Tuning | None:
    """The search `--tuning-trials` asks for, maximising the gate's metric."""
    if args.tuning_trials is None:
        return None
    try:
        tuning = api.Tuning(trials=args.tuning_trials)
    except ValidationError as err:
        raise invalid(err, {"trials": "--tuning-trials"}) from None
    objective = args.promotion_metric or tuning.objective_metric(None)
    return settings.Tuning.from_api(tuning, objective=objective)


def _export_manifest(data: Path) -> tuple[str | None, dict[str, Any] | None]:
    """The label config and source of an `export` file, from the manifest beside it."""
    from labelloop_trainer.training.export import dataset_source, manifest_path

    try:
        manifest = json.loads(manifest_path(data).read_text(encoding="utf-8"))
        return str(manifest["labelConfig"]), dataset_source(manifest, data)
    except (OSError, ValueError, TypeError, KeyError):
        return None, None  # not an export's file


def run_export(args: argparse.Namespace) -> Path:
    """Export a project's annotations up to the cut-off; the file written."""
    from labelloop_trainer.training.export import Source, export, token_from_env

    source = Source(args.url, args.project_id, args.last_annotation_id)
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
    """Score a version; with `--previous`, also score that version on the same rows and judge
    the new one's gate against it."""
    from labelloop_trainer.training.evaluate import evaluate_version
    from labelloop_trainer.training.gate import judge
    from labelloop_trainer.training.incumbent import check, score_version_dir
    from labelloop_trainer.training.output import read_label_map

    check(args.previous)
    _, plugins = scores.requested(args.metrics or ())
    result, dataset = evaluate_version(
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
        default = api.Promotion()  # a version trained without a gate is judged by the default
        promotion = settings.Promotion(
            gate.get("metric", default.metric),
            gate.get("minimum", default.minimum),
            gate.get("must_improve", default.must_improve),
        )
        task_type = TaskType(read_label_map(args.model)["taskType"])
        serving = score_version_dir(
            args.previous, task_type, dataset.labels, dataset.examples, plugins=plugins
        )
        result["promotion"] = judge(promotion, scores.scalars(result), serving).to_json()
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
            from labelloop_trainer.training.run import job_config, run_train

            if args.config is not None:
                if args.data or args.base_model or args.output:
                    raise BadInputError(
                        "train: --config carries the whole job; drop the other flags"
                    )
                from labelloop_trainer.training import jobfile

                # Parsed in full first; a Label Studio dataset is exported after that.
                cfg = job_config(jobfile.read(args.config))
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
