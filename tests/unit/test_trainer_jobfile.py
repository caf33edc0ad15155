"""One API, one parser: the trainer reads the job file and its flags with the API's models.

The job file the operator writes validates in the trainer; every default comes from
`labelloop.api.finetunejob`, for the job file and the `train` flags alike; a bad value is
named by its field (or its flag) and exits 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from labelloop.api import finetunejob as api
from labelloop.api.base import SecretKeySelector
from labelloop.api.finetunejob import FineTuneJobSpec
from labelloop.api.jobfile import JobFile
from labelloop.resources.common import Owner
from labelloop.resources.training import LabelStudioExport, TrainingInputs, job_file
from labelloop_trainer import cli
from labelloop_trainer.errors import BadInputError
from labelloop_trainer.training import jobfile
from labelloop_trainer.training.settings import Hyperparameters, LoraSettings, TrainConfig

OWNER = Owner("FineTuneJob", "reviews-r3", "ml", "1a2b3c4d-0000-4000-8000-000000000000")
SPEC = {"baseModel": {"uri": "pvc://models/base"}, "output": {"uri": "pvc://models/reviews"}}


def job(spec: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "name": "reviews-r3",
        "namespace": "ml",
        "uid": "1234",
        "modelVersion": "reviews-r3-1a2b3c4d",
        "spec": {**SPEC, "dataset": {"uri": "pvc://data/r.jsonl"}, **(spec or {})},
        "dataset": {"path": "/mnt/data/r.jsonl"},
        "outputDir": "/mnt/models/reviews",
        "baseModelDir": "/mnt/models/base",
        **fields,
    }


def config_of(content: dict[str, Any]) -> TrainConfig:
    parsed = jobfile.parse(content)
    return jobfile.train_config(parsed, jobfile.file_data(parsed.dataset))


def flags_config(tmp_path: Path, *flags: str) -> TrainConfig:
    args = cli.parser().parse_args(
        ["train", "--data", str(tmp_path / "rows.jsonl"), "--base-model", str(tmp_path),
         "--output", str(tmp_path / "models"), *flags]
    )  # fmt: skip
    return cli.config_from_flags(args)


@pytest.mark.parametrize("export", [False, True])
def test_the_operators_job_file_is_what_the_trainer_reads(export: bool) -> None:
    spec: dict[str, Any] = {**SPEC, "hyperparameters": {"learningRate": 1e-4, "batchSize": 8}}
    if export:
        spec["annotationProjectRef"] = {"name": "reviews", "round": 3}
        ls = LabelStudioExport("http://ls:8080", 7, None, SecretKeySelector(name="ls"))
    else:
        spec["dataset"] = {"uri": "pvc://data/reviews.jsonl", "textField": "review"}
        ls = None
    inputs = TrainingInputs(OWNER, FineTuneJobSpec.model_validate(spec), "trainer:1", ls)
    written = json.loads(json.dumps(job_file(inputs)))
    parsed = jobfile.parse(written)
    assert parsed == JobFile.model_validate(written)
    assert parsed.to_json() == written  # one model, both ways
    assert parsed.spec.hyperparameters.learning_rate == 1e-4
    if export:
        assert written["dataset"] == {
            "labelStudio": {"url": "http://ls:8080", "projectId": 7, "lastAnnotationId": None}
        }
    else:
        cfg = jobfile.train_config(parsed, jobfile.file_data(parsed.dataset))
        assert (cfg.data.text_field, cfg.data.label_field) == ("review", "label")
        assert cfg.hyper.batch_size == 8
        assert cfg.artifact_uri == "pvc://models/reviews"
        assert cfg.job is not None and cfg.job.uid == OWNER.uid


def test_the_job_file_defaults_are_the_apis() -> None:
    cfg = config_of(job())
    assert cfg.hyper == Hyperparameters.from_api(api.Hyperparameters())
    assert cfg.lora == LoraSettings.from_api(api.LoraSettings())
    assert cfg.metrics == tuple(api.Evaluation().metrics)
    assert cfg.promotion is None
    assert (cfg.hyper.batch_size, cfg.hyper.epochs) == (None, None)  # both auto


def test_the_train_flags_default_to_the_apis_defaults(tmp_path: Path) -> None:
    cfg = flags_config(tmp_path)
    assert cfg.hyper == Hyperparameters.from_api(api.Hyperparameters())
    assert cfg.lora == LoraSettings.from_api(api.LoraSettings())
    assert cfg.metrics == tuple(api.Evaluation().metrics)
    assert cfg.hyper == config_of(job()).hyper  # the two forms agree
    args = cli.parser().parse_args(["train"])
    assert args.learning_rate is None and args.epochs is None and args.lora_r is None


def test_a_changed_api_default_changes_the_train_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Changed(api.Hyperparameters):
        learning_rate: float = 1e-4
        epochs: int = 7

    monkeypatch.setattr(api, "Hyperparameters", Changed)
    cfg = flags_config(tmp_path)
    assert (cfg.hyper.learning_rate, cfg.hyper.epochs) == (1e-4, 7)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["train", "--help"])
    assert "default: 0.0001" in capsys.readouterr().out
    assert flags_config(tmp_path, "--epochs", "2").hyper.epochs == 2


MONITOR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no gate: the default gate's metric, macro-F1", {}, "f1"),
    ("the gate's metric", {"evaluation": {"metrics": ["accuracy"],
                                          "promotion": {"metric": "accuracy"}}}, "accuracy"),
    ("the seed's eval-loss patience, still expressible",
     {"hyperparameters": {"earlyStopping": {"metric": "eval_loss", "patience": 3}},
      "evaluation": {"promotion": {"metric": "f1"}}}, "eval_loss"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "monitor"), [c[1:] for c in MONITOR_CASES], ids=[c[0] for c in MONITOR_CASES]
)
def test_the_epoch_kept_is_the_gates_pick_by_default(spec: dict[str, Any], monitor: str) -> None:
    assert config_of(job(spec)).hyper.monitor == monitor


def test_the_flags_keep_the_epoch_the_flag_gate_would_pick(tmp_path: Path) -> None:
    assert flags_config(tmp_path).hyper.monitor == "f1"
    assert flags_config(tmp_path, "--promotion-metric", "accuracy").hyper.monitor == "accuracy"
    assert flags_config(tmp_path, "--monitor", "eval_loss").hyper.monitor == "eval_loss"


def test_spec_tuning_is_the_search_the_trainer_runs(tmp_path: Path) -> None:
    assert config_of(job()).tuning is None  # one run without spec.tuning
    cfg = config_of(job({"tuning": {"trials": 5, "space": {"loraR": [8, 16]}},
                         "evaluation": {"metrics": ["accuracy"],
                                        "promotion": {"metric": "accuracy"}}}))  # fmt: skip
    assert cfg.tuning is not None
    assert (cfg.tuning.trials, cfg.tuning.objective) == (5, "accuracy")  # the gate's metric
    default = api.SearchSpace()
    assert cfg.tuning.lora_r == (8, 16) and cfg.tuning.epochs == tuple(default.epochs)
    assert cfg.tuning.learning_rate == (default.learning_rate.min, default.learning_rate.max)
    flags = flags_config(tmp_path, "--tuning-trials", "4")
    assert flags.tuning is not None and (flags.tuning.trials, flags.tuning.objective) == (4, "f1")


def test_flags_override_and_gate(tmp_path: Path) -> None:
    cfg = flags_config(
        tmp_path,
        *("--learning-rate", "0.01", "--batch-size", "4", "--patience", "2", "--epochs", "3"),
        *("--monitor", "f1", "--lora-r", "4", "--target-modules", "query,value"),
        *("--promotion-metric", "accuracy", "--no-must-improve", "--metric", "mod:fn"),
    )
    assert (cfg.hyper.learning_rate, cfg.hyper.batch_size, cfg.hyper.epochs) == (0.01, 4, 3)
    assert (cfg.hyper.patience, cfg.hyper.monitor) == (2, "f1")
    assert (cfg.lora.r, cfg.lora.target_modules) == (4, ("query", "value"))
    assert cfg.promotion is not None
    assert (cfg.promotion.metric, cfg.promotion.must_improve) == ("accuracy", False)
    assert cfg.promotion.minimum == api.Promotion().minimum
    assert cfg.metrics == (*api.Evaluation().metrics, "mod:fn")


JOB_ERRORS: list[tuple[dict[str, Any], str]] = [
    (
        job({"tuning": {"space": {"learningRate": {"min": 0.01, "max": 0.001}}}}),
        "spec.tuning.space.learningRate.min: min must not exceed max",
    ),
    (job({"tuning": {"trials": 0}}), "spec.tuning.trials: Input should be greater than or equal"),
    (
        job({"hyperparameters": {"learningRate": 0}}),
        "spec.hyperparameters.learningRate: Input should be greater than 0",
    ),
    (
        job({"hyperparameters": {"batchSize": 0}}),
        "spec.hyperparameters.batchSize: batchSize must be a positive integer or 'auto'",
    ),
    (job({"method": {"type": "full"}}), "spec.method.type: Input should be 'lora'"),
    (
        job({"method": {"lora": {"targetModules": ["q", ""]}}}),
        "spec.method.lora.targetModules[1]: String should have at least 1 character",
    ),
    (job(outputDir=None), "outputDir: Input should be a valid string"),
    (
        job(dataset={"path": "/d.jsonl", "labelStudio": {"url": "http://ls", "projectId": 1}}),
        "dataset: set exactly one of path or labelStudio",
    ),
    (job(dataset={"path": "/d.jsonl", "taskType": "regression"}), "dataset.taskType: Input"),
]


@pytest.mark.parametrize(("content", "message"), JOB_ERRORS)
def test_a_bad_job_file_names_the_field(content: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)) as raised:
        jobfile.parse(content)
    assert raised.value.exit_code == 2


FLAG_ERRORS: list[tuple[list[str], str]] = [
    (["--learning-rate", "0"], "--learning-rate: Input should be greater than 0"),
    (["--batch-size", "0"], "--batch-size: batchSize must be a positive integer or 'auto'"),
    (["--epochs", "0"], "--epochs: epochs must be an integer from 1 to 1000 or 'auto'"),
    (["--patience", "0"], "--patience: Input should be greater than or equal to 1"),
    (["--lora-dropout", "1"], "--lora-dropout: Input should be less than 1"),
    (["--promotion-metric", "f1", "--promotion-minimum", "2"], "--promotion-minimum: Input"),
    (["--labels", "a,b,a"], "labels: ['a', 'b', 'a'] has duplicates"),
]


@pytest.mark.parametrize(("flags", "message"), FLAG_ERRORS)
def test_a_bad_flag_is_named(tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)):
        flags_config(tmp_path, *flags)


def test_a_label_studio_job_file_is_parsed_without_asking_label_studio() -> None:
    content = job(dataset={"labelStudio": {"url": "http://127.0.0.1:9", "projectId": 3}})
    parsed = jobfile.parse(content)  # no export here: the train command runs it
    assert parsed.dataset.label_studio is not None
    assert parsed.dataset.label_studio.last_annotation_id is None
    with pytest.raises(BadInputError, match=r"dataset\.path"):
        jobfile.file_data(parsed.dataset)
