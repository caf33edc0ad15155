"""Minimal valid manifests and one table of invalid ones, shared by two layers of tests.

The unit tests run every case through the pydantic models and the control-plane tests run
the same cases through the real API server, so the CEL rules in the CRDs and the Python
invariants cannot drift apart unnoticed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>
"""


def annotation_project(name: str = "minimal-ap") -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "AnnotationProject",
        "metadata": {"name": name},
        "spec": {
            "labelStudio": {"external": {"url": "http://label-studio.example.com:8080"}},
            "credentialsSecretRef": {"name": "ls-token"},
            "project": {"title": "Minimal project", "labelConfig": LABEL_CONFIG},
        },
    }


def fine_tune_job(name: str = "minimal-ftj") -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "FineTuneJob",
        "metadata": {"name": name},
        "spec": {
            "dataset": {"uri": "pvc://data/reviews.jsonl"},
            "baseModel": {"uri": "pvc://models/base/minilm"},
            "output": {"uri": "pvc://models/reviews"},
        },
    }


def prelabel_service(name: str = "minimal-pls") -> dict[str, Any]:
    return {
        "apiVersion": "labelloop.io/v1alpha1",
        "kind": "PrelabelService",
        "metadata": {"name": name},
        "spec": {
            "annotationProjectRef": {"name": "minimal-ap"},
            "model": {"version": "v1", "uri": "pvc://models/reviews/v1"},
        },
    }


BASES = {
    "AnnotationProject": annotation_project,
    "FineTuneJob": fine_tune_job,
    "PrelabelService": prelabel_service,
}

_DELETE = object()


@dataclass(frozen=True)
class InvalidCase:
    """A minimal manifest with one change that must be refused."""

    id: str
    kind: str
    changes: dict[str, Any]
    """Dotted path under `spec` → new value (or DELETE)."""
    field: str
    """The field the refusal must name, e.g. `spec.resources.nodes`."""
    message: str
    """A fragment of the message; the API server's and pydantic's wording where they agree."""
    server_message: str | None = None
    """The API server's fragment, where its wording differs from pydantic's."""

    def manifest(self, name: str | None = None) -> dict[str, Any]:
        obj = BASES[self.kind](name) if name else BASES[self.kind]()
        for path, value in self.changes.items():
            _set(obj["spec"], path.split("."), value)
        return obj


def _set(obj: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    if value is _DELETE:
        obj.pop(path[-1], None)
    else:
        obj[path[-1]] = copy.deepcopy(value)


DELETE = _DELETE
MANAGED = {"image": "heartexlabs/label-studio:1.23.2"}

INVALID_CASES: tuple[InvalidCase, ...] = (
    # --- AnnotationProject ------------------------------------------------------------------
    InvalidCase(
        "ap-both-managed-and-external",
        "AnnotationProject",
        {"labelStudio.managed": MANAGED},
        "spec.labelStudio",
        "set exactly one of managed or external",
    ),
    InvalidCase(
        "ap-neither-managed-nor-external",
        "AnnotationProject",
        {"labelStudio.external": DELETE},
        "spec.labelStudio",
        "set exactly one of managed or external",
    ),
    InvalidCase(
        "ap-two-replicas-without-database",
        "AnnotationProject",
        {"labelStudio.external": DELETE, "labelStudio.managed": {**MANAGED, "replicas": 2}},
        "spec.labelStudio.managed.database",
        "SQLite cannot be shared",
    ),
    InvalidCase(
        "ap-autoscaling-without-database",
        "AnnotationProject",
        {
            "labelStudio.external": DELETE,
            "labelStudio.managed": {**MANAGED, "autoscaling": {"maxReplicas": 3}},
        },
        "spec.labelStudio.managed.database",
        "SQLite cannot be shared",
    ),
    InvalidCase(
        "ap-autoscaling-min-above-max",
        "AnnotationProject",
        {
            "labelStudio.external": DELETE,
            "labelStudio.managed": {
                **MANAGED,
                "autoscaling": {"minReplicas": 5, "maxReplicas": 3},
                "database": {"secretRef": {"name": "pg"}},
            },
        },
        "spec.labelStudio.managed.autoscaling.minReplicas",
        "minReplicas must not exceed maxReplicas",
    ),
    InvalidCase(
        "ap-zero-replicas",
        "AnnotationProject",
        {"labelStudio.external": DELETE, "labelStudio.managed": {**MANAGED, "replicas": 0}},
        "spec.labelStudio.managed.replicas",
        "greater than or equal to 1",
    ),
    InvalidCase(
        "ap-bad-storage-size",
        "AnnotationProject",
        {
            "labelStudio.external": DELETE,
            "labelStudio.managed": {**MANAGED, "storage": {"size": "lots"}},
        },
        "spec.labelStudio.managed.storage.size",
        "should match",
    ),
    InvalidCase(
        "ap-external-url-not-http",
        "AnnotationProject",
        {"labelStudio.external.url": "ftp://ls.example.com"},
        "spec.labelStudio.external.url",
        "should match",
    ),
    InvalidCase(
        "ap-short-title",
        "AnnotationProject",
        {"project.title": "ab"},
        "spec.project.title",
        "at least 3 characters",
        server_message="at least 3 chars long",
    ),
    InvalidCase(
        "ap-label-config-not-xml",
        "AnnotationProject",
        {"project.labelConfig": "choices: [a, b]"},
        "spec.project.labelConfig",
        "should match",
    ),
    InvalidCase(
        "ap-two-data-sources",
        "AnnotationProject",
        {"data": {"url": "https://example.com/t.jsonl", "inline": [{"text": "hi"}]}},
        "spec.data",
        "set exactly one of inline, configMapRef or url",
    ),
    InvalidCase(
        "ap-quality-share-above-one",
        "AnnotationProject",
        {"quality": {"rules": [{"label": "Neutral", "maxShare": 1.5}]}},
        "spec.quality.rules[0].maxShare",
        "less than or equal to 1",
    ),
    InvalidCase(
        "ap-quality-rule-without-bound",
        "AnnotationProject",
        {"quality": {"rules": [{"label": "Neutral"}]}},
        "spec.quality.rules[0]",
        "set maxShare, minShare or both",
    ),
    InvalidCase(
        "ap-quality-min-above-max",
        "AnnotationProject",
        {"quality": {"rules": [{"label": "Neutral", "minShare": 0.5, "maxShare": 0.3}]}},
        "spec.quality.rules[0].minShare",
        "minShare must not exceed maxShare",
    ),
    InvalidCase(
        "ap-routing-basic-above-expert",
        "AnnotationProject",
        {"annotators": {"routing": {"expertMinAccuracy": 0.8, "basicMaxAccuracy": 0.9}}},
        "spec.annotators.routing.basicMaxAccuracy",
        "basicMaxAccuracy must not exceed expertMinAccuracy",
    ),
    InvalidCase(
        "ap-trigger-zero",
        "AnnotationProject",
        {
            "training": {
                "trigger": {"newAnnotations": 0},
                "template": {
                    "baseModel": {"uri": "pvc://models/base"},
                    "output": {"uri": "pvc://models/out"},
                },
            }
        },
        "spec.training.trigger.newAnnotations",
        "greater than or equal to 1",
    ),
    InvalidCase(
        "ap-unknown-strategy",
        "AnnotationProject",
        {"prelabel": {"serviceRef": {"name": "p"}, "activeLearning": {"strategy": "greedy"}}},
        "spec.prelabel.activeLearning.strategy",
        "uncertainty",
    ),
    InvalidCase(
        "ap-misspelt-field",
        "AnnotationProject",
        {"projcet": {"title": "Typo"}},
        "spec.projcet",
        "Extra inputs are not permitted",
        server_message='unknown field "spec.projcet"',
    ),
    # --- FineTuneJob ------------------------------------------------------------------------
    InvalidCase(
        "ftj-both-sources",
        "FineTuneJob",
        {"annotationProjectRef": {"name": "reviews"}},
        "spec",
        "set exactly one of annotationProjectRef or dataset",
    ),
    InvalidCase(
        "ftj-no-source",
        "FineTuneJob",
        {"dataset": DELETE},
        "spec",
        "set exactly one of annotationProjectRef or dataset",
    ),
    InvalidCase(
        "ftj-hub-model",
        "FineTuneJob",
        {"baseModel.uri": "hf://sentence-transformers/all-MiniLM-L6-v2"},
        "spec.baseModel.uri",
        "never downloaded from a hub",
    ),
    InvalidCase(
        "ftj-unknown-method",
        "FineTuneJob",
        {"method": {"type": "qlora"}},
        "spec.method.type",
        "lora",
    ),
    InvalidCase(
        "ftj-lora-dropout-one",
        "FineTuneJob",
        {"method": {"lora": {"dropout": 1.0}}},
        "spec.method.lora.dropout",
        "less than 1",
    ),
    InvalidCase(
        "ftj-negative-learning-rate",
        "FineTuneJob",
        {"hyperparameters": {"learningRate": -0.1}},
        "spec.hyperparameters.learningRate",
        "greater than 0",
    ),
    InvalidCase(
        "ftj-zero-epochs",
        "FineTuneJob",
        {"hyperparameters": {"epochs": 0}},
        "spec.hyperparameters.epochs",
        "an integer from 1 to 1000 or 'auto'",
    ),
    InvalidCase(
        "ftj-epochs-word",
        "FineTuneJob",
        {"hyperparameters": {"epochs": "many"}},
        "spec.hyperparameters.epochs",
        "an integer from 1 to 1000 or 'auto'",
        server_message="epochs must be an integer from 1 to 1000 or 'auto'",
    ),
    InvalidCase(
        "ftj-epochs-too-many",
        "FineTuneJob",
        {"hyperparameters": {"epochs": 1001}},
        "spec.hyperparameters.epochs",
        "an integer from 1 to 1000 or 'auto'",
    ),
    InvalidCase(
        "ftj-batch-size-word",
        "FineTuneJob",
        {"hyperparameters": {"batchSize": "large"}},
        "spec.hyperparameters.batchSize",
        "positive integer or 'auto'",
        server_message="batchSize must be a positive integer or 'auto'",
    ),
    InvalidCase(
        "ftj-batch-size-zero",
        "FineTuneJob",
        {"hyperparameters": {"batchSize": 0}},
        "spec.hyperparameters.batchSize",
        "positive integer or 'auto'",
    ),
    InvalidCase(
        "ftj-tuning-learning-rate-range-upside-down",
        "FineTuneJob",
        {"tuning": {"space": {"learningRate": {"min": 0.01, "max": 0.001}}}},
        "spec.tuning.space.learningRate.min",
        "min must not exceed max",
    ),
    InvalidCase(
        "ftj-tuning-no-trials",
        "FineTuneJob",
        {"tuning": {"trials": 0}},
        "spec.tuning.trials",
        "greater than or equal to 1",
    ),
    InvalidCase(
        "ftj-unknown-scheduler",
        "FineTuneJob",
        {"hyperparameters": {"lrScheduler": "exponential"}},
        "spec.hyperparameters.lrScheduler",
        "cosine",
    ),
    InvalidCase(
        "ftj-patience-zero",
        "FineTuneJob",
        {"hyperparameters": {"earlyStopping": {"patience": 0}}},
        "spec.hyperparameters.earlyStopping.patience",
        "greater than or equal to 1",
    ),
    InvalidCase(
        "ftj-too-many-gpus",
        "FineTuneJob",
        {"resources": {"gpusPerNode": 17}},
        "spec.resources.gpusPerNode",
        "less than or equal to 16",
    ),
    InvalidCase(
        "ftj-nvlink-single-gpu",
        "FineTuneJob",
        {"resources": {"interconnect": "nvlink"}},
        "spec.resources.interconnect",
        "nvlink needs at least two GPUs",
    ),
    InvalidCase(
        "ftj-unknown-interconnect",
        "FineTuneJob",
        {"resources": {"interconnect": "infiniband"}},
        "spec.resources.interconnect",
        "nvlink",
    ),
    InvalidCase(
        "ftj-promotion-metric-not-computed",
        "FineTuneJob",
        {"evaluation": {"metrics": ["accuracy"], "promotion": {"metric": "f1"}}},
        "spec.evaluation.promotion.metric",
        "promotion.metric must be one of metrics",
    ),
    InvalidCase(
        "ftj-promotion-minimum-above-one",
        "FineTuneJob",
        {"evaluation": {"promotion": {"minimum": 80}}},
        "spec.evaluation.promotion.minimum",
        "less than or equal to 1",
    ),
    InvalidCase(
        "ftj-misspelt-hyperparameter",
        "FineTuneJob",
        {"hyperparameters": {"learningrate": 0.001}},
        "spec.hyperparameters.learningrate",
        "Extra inputs are not permitted",
        server_message='unknown field "spec.hyperparameters.learningrate"',
    ),
    # --- PrelabelService --------------------------------------------------------------------
    InvalidCase(
        "pls-both-model-forms",
        "PrelabelService",
        {"model.fineTuneJobRef": {"name": "reviews-r3"}},
        "spec.model",
        "set either fineTuneJobRef, or version and uri",
    ),
    InvalidCase(
        "pls-version-without-uri",
        "PrelabelService",
        {"model.uri": DELETE},
        "spec.model.uri",
        "version and uri go together",
    ),
    InvalidCase(
        "pls-steps-not-rising",
        "PrelabelService",
        {"rollout": {"steps": [50, 25, 100]}},
        "spec.rollout.steps",
        "steps must rise strictly and end at 100",
    ),
    InvalidCase(
        "pls-steps-not-ending-at-100",
        "PrelabelService",
        {"rollout": {"steps": [25, 50]}},
        "spec.rollout.steps",
        "steps must rise strictly and end at 100",
    ),
    InvalidCase(
        "pls-steps-repeated",
        "PrelabelService",
        {"rollout": {"steps": [50, 50, 100]}},
        "spec.rollout.steps",
        "steps must rise strictly and end at 100",
    ),
    InvalidCase(
        "pls-unknown-strategy",
        "PrelabelService",
        {"rollout": {"strategy": "Shadow"}},
        "spec.rollout.strategy",
        "Canary",
    ),
    InvalidCase(
        "pls-bad-version-name",
        "PrelabelService",
        {"model.version": "Version_1"},
        "spec.model.version",
        "should match",
    ),
    InvalidCase(
        "pls-negative-replicas",
        "PrelabelService",
        {"replicas": -1},
        "spec.replicas",
        "greater than or equal to 0",
    ),
    InvalidCase(
        "pls-history-too-long",
        "PrelabelService",
        {"revisionHistoryLimit": 50},
        "spec.revisionHistoryLimit",
        "less than or equal to 20",
    ),
)
