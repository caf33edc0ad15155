"""Building blocks shared by the three kinds: the model base class, validation rules, references.

Every rule that crosses fields is written once, as an `Invariant`: a CEL expression that the API
server enforces (`x-kubernetes-validations` in the generated CRD) next to the same predicate in
Python, which the operator and the local runner enforce when they parse a manifest. Keeping the
two side by side is what keeps them in step; `tests/` runs one table of bad manifests against
both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "labelloop.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


@dataclass(frozen=True)
class Invariant:
    """A cross-field rule, enforced by the API server (CEL) and by `ApiModel` (Python)."""

    cel: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str | None = None
    """Where the API server reports a violation, relative to the object, e.g. `.database`."""


@dataclass(frozen=True)
class TransitionRule:
    """A rule between the stored object and an update (CEL `oldSelf`): only the API server
    has both, so it has no Python side."""

    cel: str
    message: str


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields refused, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    invariants: ClassVar[tuple[Invariant, ...]] = ()
    transition_rules: ClassVar[tuple[TransitionRule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for rule in type(self).invariants:
            if not rule.holds(self):
                where = rule.field_path.lstrip(".") + ": " if rule.field_path else ""
                raise ValueError(f"{where}{rule.message}")
        return self

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def exactly_one_set(*fields: str) -> Callable[[Any], bool]:
    """A predicate: exactly one of these attributes is not None."""
    return lambda obj: sum(getattr(obj, f) is not None for f in fields) == 1


# Kubernetes object names: RFC 1123 subdomains for most objects, labels for what ends up in a
# label value or a DNS name of a Service.
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]

# A resource quantity such as `20Gi`, `500m` or `2`.
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
Quantity = Annotated[int | str, Field(union_mode="left_to_right")]


class LocalObjectReference(ApiModel):
    """A reference to an object of a known kind in the same namespace."""

    name: ObjectName
    """Name of the referenced object."""


class SecretKeySelector(ApiModel):
    """One key of a Secret in the same namespace."""

    name: ObjectName
    """Name of the Secret."""
    key: Annotated[str, Field(min_length=1, max_length=253)] = "token"
    """Key inside the Secret."""


class ResourceRequirements(ApiModel):
    """Compute resources of a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = None
    """Minimum resources, e.g. `{cpu: 500m, memory: 1Gi}`."""
    limits: dict[str, Quantity] | None = None
    """Maximum resources, e.g. `{memory: 4Gi}`."""


class PodMetadata(ApiModel):
    """Extra metadata for the pods the operator creates (for sidecar injection, cost labels,
    scheduling hints and the like)."""

    labels: dict[str, Annotated[str, Field(max_length=63)]] | None = None
    """Labels added to each pod."""
    annotations: dict[str, str] | None = None
    """Annotations added to each pod."""


class Toleration(ApiModel):
    """A taint the pods tolerate, as in a Pod spec."""

    key: Annotated[str, Field(max_length=317)] | None = None
    """Taint key; unset with operator Exists tolerates every taint."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """Exists matches any value; Equal matches `value`."""
    value: Annotated[str, Field(max_length=63)] | None = None
    """Taint value, for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect; unset matches every effect."""


class PodScheduling(ApiModel):
    """Where pods go, as in a Pod spec: nodes with these labels, tolerating these taints."""

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = {}
    """Node labels every pod requires."""
    tolerations: list[Toleration] = []
    """Taints the pods tolerate."""


# Where models and datasets live. Never a model hub: nothing is downloaded at run time.
ARTIFACT_URI = re.compile(
    r"^(pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/\S*)?|(s3|gs|az)://[^\s/]+(/\S*)?|file:///\S*|/\S*)$"
)
ARTIFACT_URI_CEL = (
    r"self.uri.matches('^(pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/\\S*)?"
    r"|(s3|gs|az)://[^\\s/]+(/\\S*)?|file:///\\S*|/\\S*)$')"
)


class ArtifactLocation(ApiModel):
    """A location for model weights or a dataset: a volume, an object store or a local path."""

    invariants = (
        Invariant(
            cel=ARTIFACT_URI_CEL,
            message=(
                "must be pvc://<claim>/<path>, s3://<bucket>/<path>, gs://<bucket>/<path>, "
                "az://<container>/<path>, file:///<path> or an absolute path "
                "(models are never downloaded from a hub at run time)"
            ),
            holds=lambda loc: ARTIFACT_URI.match(loc.uri) is not None,
            field_path=".uri",
        ),
    )

    uri: Annotated[str, Field(min_length=1, max_length=1024)]
    """URI of the artifact, e.g. `pvc://models/base/minilm` or `s3://bucket/models/reviews`."""


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """One observation of the object's state, shaped like `metav1.Condition`."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    """Kind of condition: Ready, Reconciling, Stalled, and per kind e.g. Succeeded or Failed."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: Annotated[str, Field(min_length=1, max_length=1024)]
    """A CamelCase word that says why, for machines."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """What a person needs to know about this condition."""
    last_transition_time: str
    """When the status last changed (RFC 3339)."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The `metadata.generation` this condition was computed from."""


class CommonStatus(ApiModel):
    """Status fields every kind carries, so that kstatus and Argo CD can compute health."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The `metadata.generation` the operator last reconciled."""
    conditions: Annotated[list[Condition], Field(max_length=32)] = []
    """Current conditions: Ready, Reconciling (work under way), Stalled (needs a person)."""
