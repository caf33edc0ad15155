"""PrelabelService: versioned prelabel deployments of a project's models, with rollback."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import (
    DNS_LABEL,
    ApiModel,
    ArtifactLocation,
    CommonStatus,
    Invariant,
    LocalObjectReference,
    PodMetadata,
    ResourceRequirements,
)

ModelVersion = Annotated[str, Field(min_length=1, max_length=40, pattern=DNS_LABEL)]
Percent = Annotated[int, Field(ge=0, le=100)]


class ModelReference(ApiModel):
    """The model to serve: a FineTuneJob's output, or an explicit version and location."""

    invariants = (
        Invariant(
            cel="has(self.fineTuneJobRef) != (has(self.version) || has(self.uri))",
            message="set either fineTuneJobRef, or version and uri",
            holds=lambda m: (
                (m.fine_tune_job_ref is not None) != (m.version is not None or m.uri is not None)
            ),
        ),
        Invariant(
            cel="has(self.version) == has(self.uri)",
            message="version and uri go together",
            holds=lambda m: (m.version is None) == (m.uri is None),
            field_path=".uri",
        ),
        Invariant(
            cel="!has(self.baseModel) || has(self.uri)",
            message="baseModel goes with version and uri (a FineTuneJob names its own)",
            holds=lambda m: m.base_model is None or m.uri is not None,
            field_path=".baseModel",
        ),
    )

    fine_tune_job_ref: LocalObjectReference | None = None
    """Serve the version a FineTuneJob produced."""
    version: ModelVersion | None = None
    """Model version (a DNS label, used in the Deployment's name)."""
    uri: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """Location of that version's directory."""
    base_model: ArtifactLocation | None = None
    """The base model the version's adapter was trained from, mounted beside it for the
    prelabel server (with fineTuneJobRef, the FineTuneJob's baseModel)."""


class Rollout(ApiModel):
    """How a new version takes over from the active one."""

    invariants = (
        Invariant(
            cel="self.steps.isSorted() && self.steps.all(s, self.steps.indexOf(s) == "
            "self.steps.lastIndexOf(s)) && self.steps[self.steps.size() - 1] == 100",
            message="steps must rise strictly and end at 100, e.g. [25, 50, 100]",
            holds=lambda r: (
                all(a < b for a, b in zip(r.steps, r.steps[1:], strict=False))
                and r.steps[-1] == 100
            ),
            field_path=".steps",
        ),
    )

    strategy: Literal["Canary", "BlueGreen"] = "Canary"
    """Canary moves traffic through `steps`; BlueGreen switches at once when the new version
    is Ready."""
    steps: Annotated[
        list[Annotated[int, Field(ge=1, le=100)]], Field(min_length=1, max_length=20)
    ] = [
        25,
        50,
        100,
    ]
    """Traffic shares (percent) of the new version, step by step."""
    step_seconds: Annotated[int, Field(ge=0, le=86400)] = 60
    """Time spent at each Canary step while prelabel accuracy is measured."""
    ready_deadline_seconds: Annotated[int, Field(ge=10, le=86400)] = 600
    """A version not Ready within this time is rolled back."""
    min_prelabel_accuracy: Annotated[float, Field(ge=0, le=1)] = 0.0
    """A version whose prelabels annotators accept less often than this is rolled back."""


class PrelabelServiceSpec(ApiModel):
    """Desired state of a PrelabelService."""

    annotation_project_ref: LocalObjectReference
    """The AnnotationProject to prelabel."""
    model: ModelReference
    """The version to serve."""
    auto_promote: bool = False
    """Follow the newest Succeeded FineTuneJob of the project that passed its promotion gate."""
    rollout: Rollout = Field(default_factory=Rollout)
    """Rollout strategy and automatic rollback."""
    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Replicas of the active version."""
    revision_history_limit: Annotated[int, Field(ge=0, le=20)] = 3
    """Old versions kept at zero replicas for instant rollback."""
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Prelabel server image; the operator's default when unset."""
    resources: ResourceRequirements | None = None
    """Compute resources of each replica."""
    pod_metadata: PodMetadata | None = None
    """Labels and annotations for the pods of versions created from now on (a version's pods
    keep the metadata they were created with)."""


# --- status -------------------------------------------------------------------------------


class VersionStatus(ApiModel):
    """One model version's deployment."""

    version: ModelVersion
    """Model version."""
    uri: str | None = None
    """Location of the version's directory."""
    base_model_uri: str | None = None
    """Location of the base model its adapter belongs to."""
    deployment: str | None = None
    """Deployment serving it."""
    replicas: Annotated[int, Field(ge=0)] = 0
    """Desired replicas."""
    ready_replicas: Annotated[int, Field(ge=0)] = 0
    """Ready replicas."""
    traffic: Percent = 0
    """Share of prelabel traffic, in percent."""
    prelabel_accuracy: Annotated[float, Field(ge=0, le=1)] | None = None
    """Share of its prelabels that annotators kept unchanged."""
    state: Literal["Progressing", "Active", "Previous", "Retired", "RolledBack"] = "Progressing"
    """Role of this version."""
    since: str | None = None
    """When the version entered its current state or rollout step (RFC 3339)."""
    message: str | None = None
    """Why the version is in this state, e.g. the reason it was rolled back."""


class PrelabelServiceStatus(CommonStatus):
    """Observed state of a PrelabelService."""

    active_version: ModelVersion | None = None
    """Version taking all traffic once the rollout is done."""
    previous_version: ModelVersion | None = None
    """Version active before it, the target of a rollback."""
    target_version: ModelVersion | None = None
    """Version asked for by the spec (or autoPromote); differs from activeVersion during a
    rollout and after a rollback."""
    canary_step: Annotated[int, Field(ge=0)] | None = None
    """Index into spec.rollout.steps while a Canary rollout is under way."""
    service_url: str | None = None
    """Stable URL of the prelabel service inside the cluster."""
    versions: Annotated[list[VersionStatus], Field(max_length=32)] = []
    """Versions with their replicas, traffic and accuracy."""
