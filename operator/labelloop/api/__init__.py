"""The labelloop API (`labelloop.io/v1alpha1`): pydantic models of spec and status.

These models are the single source of truth: the CRDs in `crds/` are generated from them
(`make crds`), the operator parses every object through them, and the local runner reads the
same manifests with them.
"""

from .annotationproject import AnnotationProjectSpec, AnnotationProjectStatus
from .base import API_VERSION, GROUP, VERSION, ApiModel, Condition, Invariant
from .finetunejob import FineTuneJobSpec, FineTuneJobStatus, FineTuneJobTemplate
from .jobfile import JobDataset, JobFile, LabelStudioSource
from .kinds import ANNOTATION_PROJECT, FINE_TUNE_JOB, KINDS, PRELABEL_SERVICE, Kind
from .manifests import Manifest, ManifestError, load_manifest_dir, parse_manifest, parse_manifests
from .prelabelservice import PrelabelServiceSpec, PrelabelServiceStatus

__all__ = [
    "ANNOTATION_PROJECT",
    "API_VERSION",
    "FINE_TUNE_JOB",
    "GROUP",
    "KINDS",
    "PRELABEL_SERVICE",
    "VERSION",
    "AnnotationProjectSpec",
    "AnnotationProjectStatus",
    "ApiModel",
    "Condition",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "FineTuneJobTemplate",
    "Invariant",
    "JobDataset",
    "JobFile",
    "Kind",
    "LabelStudioSource",
    "Manifest",
    "ManifestError",
    "PrelabelServiceSpec",
    "PrelabelServiceStatus",
    "load_manifest_dir",
    "parse_manifest",
    "parse_manifests",
]
