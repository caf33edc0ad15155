"""One training run, start to finish: the command `train` runs, in either of its forms.

`job_config` turns the job file into the run's configuration, exporting a
`dataset.labelStudio` first (or finding that export again after a restart); `run_train`
trains (or runs the search of `spec.tuning` and keeps its best trial), judges the promotion
gate, writes the version and the result line, and removes the run's checkpoints and export.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from labelloop.api.jobfile import JobFile
from labelloop_trainer.training import incumbent, jobfile, scores
from labelloop_trainer.training.distributed import barrier, started
from labelloop_trainer.training.export import Source, exports_dir, materialise
from labelloop_trainer.training.gate import judge
from labelloop_trainer.training.kube_status import reporter
from labelloop_trainer.training.loop import checkpoint_dir, train
from labelloop_trainer.training.output import check_new, write_result, write_version
from labelloop_trainer.training.progress import Progress
from labelloop_trainer.training.settings import DataSettings, TrainConfig
from labelloop_trainer.training.tuning import search, trial_work_name


def job_config(job: JobFile) -> TrainConfig:
    """The run `job` describes; a Label Studio dataset is exported (or its export found)."""
    return jobfile.train_config(job, job_data(job))


def job_data(job: JobFile) -> DataSettings:
    """The job's data: its file, or the export of its Label Studio project."""
    source = job.dataset.label_studio
    if source is None:
        return jobfile.file_data(job.dataset)
    output_dir = Path(job.output_dir)
    check_new(output_dir, job.model_version)  # a finished job exits 3 without asking
    return materialise(Source.from_api(source), exports_dir(output_dir, job.model_version))


def run_train(cfg: TrainConfig) -> Path | None:
    """Train, judge the gate and write the version; the version directory on rank 0."""
    incumbent.check(cfg.previous_version_dir)
    with started() as ctx:
        progress = Progress(enabled=ctx.is_main)
        if ctx.is_main:
            progress.status = reporter(cfg.job, lambda m: progress.event("warning", message=m))
        try:
            found = None if cfg.tuning is None else search(cfg, ctx, progress)
            outcome = train(cfg, ctx, progress) if found is None else found.best
        finally:
            progress.close()
        trained = cfg if found is None else found.config
        if not ctx.is_main:
            barrier(ctx)
            return None
        scalars = scores.scalars(outcome.metrics)
        serving = None
        if cfg.promotion is not None:
            serving = incumbent.score_incumbent(
                cfg.previous_version_dir,
                cfg.base_model_dir,
                cfg.data.task_type,
                outcome.labels,
                outcome.held_out,
                plugins=scores.requested(cfg.metrics)[1],
            )
        verdict = judge(cfg.promotion, scalars, serving)
        resolved = trained.to_json() | {"model_version": outcome.version}
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
                }
                | ({} if found is None else {"tuning": found.to_json()}),
                "dataset.json": outcome.manifest,
                "config.json": resolved,
                "base_model.json": {
                    "dir": str(cfg.base_model_dir.resolve()),
                    "modelType": outcome.model_type,
                },
            },
        )
        trial_dirs = [] if cfg.tuning is None else range(cfg.tuning.trials)
        for number in trial_dirs:
            _remove_work_dir(
                checkpoint_dir(cfg.output_dir, trial_work_name(outcome.version, number))
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
            | ({} if found is None else {"tuning": found.summary()})
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
