"""The FineTuneJob that one training round of an AnnotationProject creates.

Its spec is the project's `spec.training.template` plus a reference to the project with the
round and the snapshot cut-off (the newest annotation included), so the job trains on exactly
the annotations that started the round, however many arrive while it runs. The project owns
it: deleting the project lets the garbage collector remove its rounds.
"""

from __future__ import annotations

from typing import Any

from ..api import API_VERSION, FINE_TUNE_JOB
from ..api.finetunejob import FineTuneJobTemplate
from .common import LABEL_PREFIX, Manifest, Owner, labels

PROJECT_LABEL = f"{LABEL_PREFIX}/annotationproject"
ROUND_LABEL = f"{LABEL_PREFIX}/round"
COMPONENT = "training-round"


def build_round_job(
    owner: Owner, name: str, round_: int, last_annotation_id: int, template: FineTuneJobTemplate
) -> Manifest:
    spec: dict[str, Any] = template.to_wire()
    spec["annotationProjectRef"] = {
        "name": owner.name,
        "round": round_,
        "lastAnnotationId": last_annotation_id,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": FINE_TUNE_JOB.kind,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {**labels(owner, COMPONENT), ROUND_LABEL: str(round_)},
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }


def round_of(job: Manifest) -> tuple[int, int] | None:
    """(round, cut-off) of a FineTuneJob made by `build_round_job`, None for any other."""
    ref = (job.get("spec") or {}).get("annotationProjectRef") or {}
    round_ = ref.get("round")
    if not isinstance(round_, int):
        return None
    return round_, int(ref.get("lastAnnotationId") or 0)
