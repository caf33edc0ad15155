"""`labelloop run`: one AnnotationProject's loop on this machine, decided by `labelloop.loop`.

Each `step()` is one reconcile, like the operator's, over what Label Studio holds right now:

1. count the annotations (`loop.counting`); when `loop.trigger` says a round starts, build its
   FineTuneJob exactly as the operator does (`resources.rounds`), turn it into the trainer's
   job file (`resources.training.job_file`: the trainer exports the project's annotations up
   to the round's cut-off itself) and run the trainer as a local process;
2. pick the version to serve (`loop.serving`: with `autoPromote`, the newest round that
   passed its gate, else `spec.model`) and take one rollout step
   (`loop.rollout.plan_rollout`), observing each version's server (`GET /health` for
   readiness, `loop.acceptance` for prelabel accuracy); a server process stands for a
   Deployment, so a version the plan gives replicas runs and a version at zero replicas is
   stopped, its directory kept for rollback;
3. the operator's prelabel step (`loop.prelabels`): the serving version as the project's one
   ML backend, asked about every unlabelled task without its prediction, and the most
   informative `batchSize` answers (`loop.active_learning`) imported, once per pass (while
   the zero-shot server serves, a random sample: the cold-start rule);
4. the operator's review step (`steps.review`): the Data Manager views, among them the
   relabel suspects (`loop.relabel`).

Each time a new version serves, the prelabel step compares its labels of the unlabelled
tasks with the previous version's, which feeds the stopping rule
(`active_learning.stopping_signal`, `spec.prelabel.activeLearning.stability`).

Before any fine-tuned version is active, the zero-shot server of the base model serves
(round 0). Training blocks a step: annotators keep working in Label Studio meanwhile, and the
next step counts what they did.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..api import ANNOTATION_PROJECT, FINE_TUNE_JOB
from ..api.finetunejob import FineTuneJobSpec
from ..api.labelconfig import LabelSchema, parse_label_config
from ..labelstudio.client import LabelStudioClient
from ..labelstudio.errors import LabelStudioError
from ..labelstudio.ml_backend import MLBackendClient, MLBackendError
from ..labelstudio.models import Task
from ..loop import acceptance, active_learning, counting, prelabels, serving, trigger
from ..loop.rollout import Observed, Plan, RolloutState, Target, plan_rollout
from ..resources.common import Owner
from ..resources.rounds import build_round_job
from ..resources.training import LabelStudioExport, TrainingInputs, job_file
from ..steps import review as review_step
from ..steps.prelabel import AnswerCache, prelabel_pass, register_backend
from ..steps.project import ensure_project, import_data
from .labelstudio_server import LabelStudioServer, free_port
from .manifests import LocalManifests, Project
from .processes import PrelabelServer, ProgressEvent, TrainingFailed, run_trainer
from .volumes import Volumes

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
IMPORT_CHUNK = 1000
JSON = dict[str, Any]
Say = Callable[[str], None]


class RunnerError(RuntimeError):
    """The run cannot go on; the message says what to change."""


@dataclass
class RoundRecord:
    """One training round: the FineTuneJob's identity and, once it ran, its status."""

    round: int
    job: str
    cutoff: int
    started: str
    phase: str = "Running"
    model_version: str | None = None
    artifact_uri: str | None = None
    completion_time: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    promotion: dict[str, Any] | None = None
    dataset_count: int | None = None
    seconds: float | None = None
    message: str | None = None

    def as_job(self, project: str) -> JSON:
        """The FineTuneJob object `loop.serving` reads."""
        status: JSON = {"phase": self.phase, "completionTime": self.completion_time}
        if self.model_version and self.artifact_uri:
            status |= {"modelVersion": self.model_version, "artifactUri": self.artifact_uri}
        if self.promotion is not None:
            status["promotion"] = self.promotion
        return {
            "metadata": {"name": self.job},
            "spec": {"annotationProjectRef": {"name": project, "round": self.round}},
            "status": status,
        }


@dataclass
class RunState:
    """What a run keeps in `<work dir>/state.json`, so that a second run goes on from it."""

    project_uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    project_id: int | None = None
    rounds: list[RoundRecord] = field(default_factory=list)

    def round_state(self) -> trigger.RoundState:
        if not self.rounds:
            return trigger.RoundState(0, 0, None)
        last = self.rounds[-1]
        started = datetime.fromisoformat(last.started)
        return trigger.RoundState(len(self.rounds), last.cutoff, started, last.job)

    @classmethod
    def load(cls, path: Path) -> RunState:
        if not path.exists():
            return cls()
        raw = json.loads(path.read_text())
        rounds = [RoundRecord(**r) for r in raw.pop("rounds", [])]
        return cls(**raw, rounds=rounds)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


@dataclass(frozen=True)
class RunnerOptions:
    work_dir: Path
    volumes: Volumes
    predict_chunk: int = 100
    """Tasks per `/predict` request (as the operator asks)."""


@dataclass
class PrelabelPass:
    """One prelabel step of the serving version."""

    version: str
    predictions: dict[int, JSON]
    """The version's answer for every unlabelled task asked so far (imported or not)."""
    queue: list[int]
    """Unlabelled tasks holding its prelabel in Label Studio, most informative first: what
    annotators should do next."""
    imported: int
    """Predictions imported in this pass (`batchSize` at most)."""
    predicted: int
    """Tasks sent to `/predict` in this pass (the others' answers are remembered)."""
    seconds: float
    stopping: active_learning.StoppingSignal
    """The stopping rule over the versions served so far."""


@dataclass
class StepOutcome:
    counts: counting.Tally
    trained: RoundRecord | None
    rollout: str
    settled: bool
    """No rollout under way, and the serving version's prelabels are in."""
    prelabels: PrelabelPass | None
    review: review_step.Review | None
    """The review step's findings (None before any prediction)."""


class LocalRunner:
    """The loop of one project. `start()`, then `step()` as often as wanted, then `close()`."""

    def __init__(
        self,
        project: Project,
        manifests: LocalManifests,
        options: RunnerOptions,
        *,
        say: Say = print,
        on_train_event: Callable[[ProgressEvent], None] = lambda _: None,
    ) -> None:
        self.project = project
        self.manifests = manifests
        self.options = options
        self.say = say
        self.on_train_event = on_train_event
        self.schema: LabelSchema = parse_label_config(project.spec.project.label_config)
        self.work_dir = options.work_dir
        self.state_path = self.work_dir / "state.json"
        self.state = RunState.load(self.state_path)
        self.label_studio: LabelStudioServer | None = None
        self._ls: LabelStudioClient | None = None
        self._token = ""
        self.rollout_state = RolloutState()
        self.plan: Plan | None = None
        self.servers: dict[str, PrelabelServer] = {}
        self.zero_shot: PrelabelServer | None = None
        self.last_pass: PrelabelPass | None = None
        self.answers = AnswerCache()
        """The serving version's answers to pending tasks, between passes (`steps.prelabel`)."""
        self._seen: dict[str, dict[int, JSON]] = {}
        """Each version's answers by task id, imported or not, for the queue and the report."""
        self.agreements: list[float] = []
        """Kappa between each version served and the one before, on the unlabelled tasks."""
        self._refused: str | None = None
        self._check_paths()

    # -- set-up and tear-down -----------------------------------------------------------------

    @property
    def ls(self) -> LabelStudioClient:
        if self._ls is None:
            raise RunnerError("the runner is not started")
        return self._ls

    @property
    def project_id(self) -> int:
        assert self.state.project_id is not None
        return self.state.project_id

    def start(self) -> None:
        """Label Studio (started when managed), the project, its tasks, round 0's server."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._needs_zero_shot():
            self._start_zero_shot()  # it loads its model while Label Studio starts
        url = self._start_label_studio()
        self._ls = LabelStudioClient(url, self._token)
        self.ls.health()
        self.state.project_id = ensure_project(
            self.ls, self.project.spec, self.state.project_id, self._record_project
        )
        self._save()
        self.say(f"Label Studio project {self.project_id} at {url}/projects/{self.project_id}")
        self._import_tasks()

    def close(self) -> None:
        """Stop everything this runner started."""
        for server in self.servers.values():
            server.stop()
        if self.zero_shot is not None:
            self.zero_shot.stop()
        if self._ls is not None:
            self._ls.close()
        if self.label_studio is not None:
            self.label_studio.stop()

    def __enter__(self) -> LocalRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _check_paths(self) -> None:
        """Every volume URI placed on this machine, before anything starts."""
        training = self.project.spec.training
        if training is not None:
            where = "spec.training.template"
            uri = training.template.base_model.uri
            base = self.options.volumes.path(uri, f"{where}.baseModel.uri")
            if not base.exists():
                claim = uri.removeprefix("pvc://").split("/", 1)[0]
                raise RunnerError(
                    f"{where}.baseModel.uri: {uri} is {base} here, which does not exist; "
                    f"map the claim to a directory holding it with --volume {claim}=DIR"
                )
            self.options.volumes.path(training.template.output.uri, f"{where}.output.uri")
        service = self.project.service
        if service is not None and service.model.uri is not None:
            self.options.volumes.path(service.model.uri, "PrelabelService spec.model.uri")

    def _start_label_studio(self) -> str:
        source = self.project.spec.label_studio
        if source.external is not None:
            self._token = self._external_token()
            return source.external.url
        directory = self.work_dir / "label-studio"
        directory.mkdir(parents=True, exist_ok=True)
        credentials = directory / "credentials.json"
        if credentials.exists():
            saved = json.loads(credentials.read_text())
        else:
            saved = {"password": secrets.token_urlsafe(16), "token": secrets.token_hex(20)}
            credentials.touch(mode=0o600)
            credentials.write_text(json.dumps(saved))
        self.label_studio = LabelStudioServer(
            data_dir=directory / "data",
            log_path=directory / "server.log",
            port=free_port(),
            password=saved["password"],
            token=saved["token"],
        )
        self.say(f"starting Label Studio (log {self.label_studio.log_path}) …")
        self.label_studio.start()
        self.say(f"Label Studio up in {self.label_studio.last_start_s:.0f} s")
        self._token = self.label_studio.token
        return self.label_studio.url

    def _external_token(self) -> str:
        ref = self.project.spec.credentials_secret_ref
        secret = self.manifests.secrets.get(ref.name)
        if secret is not None and secret.get(ref.key):
            return secret[ref.key].strip()
        from_env = os.environ.get(TOKEN_ENV, "").strip()
        if from_env:
            return from_env
        raise RunnerError(
            f"spec.credentialsSecretRef: no Secret {ref.name!r} with key {ref.key!r} in the "
            f"manifests, and ${TOKEN_ENV} is not set: give the Label Studio token either way"
        )

    def _record_project(self, project_id: int) -> None:
        self.state.project_id = project_id
        self._save()

    def _save(self) -> None:
        self.state.save(self.state_path)

    def _import_tasks(self) -> None:
        data = self.project.spec.data
        if data is None:
            return
        tasks = list(self.ls.iter_tasks(self.project_id))
        found = import_data(
            self.ls,
            self.project_id,
            data,
            schema=self.schema,
            config_maps=self.manifests.config_maps.get,
            tasks=tasks,
        )
        if found.unavailable is not None:
            raise RunnerError(f"spec.data: {found.unavailable}")
        problems = f"; {found.message}" if found.message else ""
        self.say(f"imported {found.sent} new task(s), {found.rows - found.sent} present{problems}")

    # -- one pass -------------------------------------------------------------------------------

    def step(self) -> StepOutcome:
        """One reconcile: count, maybe train, one rollout step, prelabels."""
        tasks = list(self.ls.iter_tasks(self.project_id))
        state = self.state.round_state()
        counts = counting.tally(tasks, self.schema, state.cutoff)
        trained = None
        training = self.project.spec.training
        if training is not None:
            rule = training.trigger
            decision = trigger.decide(
                counts.since_last_training,
                rule.new_annotations,
                rule.min_interval_seconds,
                state,
                datetime.now(UTC),
            )
            if decision.start:
                trained = self._train_round(state, counts.last_annotation_id, decision.reason)
                tasks = list(self.ls.iter_tasks(self.project_id))
        message, rolling = self._rollout(tasks)
        pushed = None
        serving = self._serving()
        if serving is not None:
            self._ensure_backend(serving)
            pushed = self._prelabel(tasks, serving)
        reviewed = review_step.review(
            self.ls, self.project_id, self.project.spec, tasks=tasks, schema=self.schema
        )
        settled = not rolling and pushed is not None
        return StepOutcome(counts, trained, message, settled, pushed, reviewed)

    def settle(self, timeout_s: float = 900.0, interval_s: float = 0.5) -> StepOutcome:
        """Step until no rollout is under way and the serving version's prelabels are in."""
        deadline = time.monotonic() + timeout_s
        while True:
            outcome = self.step()
            if outcome.settled or self.project.service is None:
                return outcome
            if time.monotonic() > deadline:
                raise RunnerError(f"no steady state within {timeout_s:.0f} s: {outcome.rollout}")
            time.sleep(interval_s)

    def run(self, poll_s: float = 5.0) -> None:
        """Step until interrupted (Ctrl-C), then stop everything that was started."""
        try:
            self.start()
            self.say("running; Ctrl-C stops")
            last = ""
            while True:
                try:
                    outcome = self.step()
                except LabelStudioError as exc:  # an outage: the next pass tries again
                    self.say(f"Label Studio: {exc}")
                    time.sleep(poll_s)
                    continue
                line = (
                    f"{outcome.counts.annotations} annotation(s), "
                    f"{outcome.counts.since_last_training} since the last round; {outcome.rollout}"
                )
                if line != last:
                    self.say(line)
                    last = line
                time.sleep(poll_s if outcome.settled else 1.0)
        except KeyboardInterrupt:
            self.say("stopping")
        finally:
            self.close()

    # -- training ---------------------------------------------------------------------------------

    def _train_round(self, state: trigger.RoundState, cutoff: int, why: str) -> RoundRecord:
        training = self.project.spec.training
        assert training is not None
        number = state.rounds + 1
        name = trigger.round_job_name(self.project.name, number)
        record = RoundRecord(number, name, cutoff, datetime.now(UTC).isoformat())
        self.state.rounds.append(record)
        self._save()
        self.say(f"round {number}: FineTuneJob {name} ({why})")
        project = Owner(
            ANNOTATION_PROJECT.kind,
            self.project.name,
            self.project.namespace,
            self.state.project_uid,
        )
        manifest = build_round_job(project, name, number, cutoff, training.template)
        spec = FineTuneJobSpec.model_validate(manifest["spec"])
        owner = Owner(FINE_TUNE_JOB.kind, name, self.project.namespace, str(uuid.uuid4()))
        export = LabelStudioExport(
            self.ls.url, self.project_id, cutoff, self.project.spec.credentials_secret_ref
        )
        # The version to beat, as the operator takes it (`loop.serving.previous_version`).
        previous = serving.previous_version(self.rollout_state)
        inputs = TrainingInputs(
            owner,
            spec,
            image=spec.image or "local",
            export=export,
            previous_version_dir=None if previous is None else previous.uri,
        )
        # The operator's job file; only the paths differ: claims are directories here, not
        # mounts under /mnt (see `volumes`).
        job = job_file(inputs)
        volumes = self.options.volumes
        job["baseModelDir"] = str(volumes.path(spec.base_model.uri, "baseModel.uri"))
        job["outputDir"] = str(volumes.path(spec.output.uri, "output.uri"))
        if previous is not None:
            job["previousVersionDir"] = str(volumes.path(previous.uri, "artifactUri"))
        round_dir = self.work_dir / "rounds" / name
        began = time.monotonic()
        try:
            result = run_trainer(
                job,
                round_dir,
                secret_env={TOKEN_ENV: self._token},
                on_event=self.on_train_event,
            )
        except TrainingFailed as exc:
            record.phase, record.message = "Failed", str(exc)
            record.completion_time = datetime.now(UTC).isoformat()
            record.seconds = round(time.monotonic() - began, 1)
            self._save()
            self.say(f"round {number} failed: {exc}")
            return record
        record.phase = "Succeeded"
        record.model_version = str(result["modelVersion"])
        record.artifact_uri = str(result["artifactUri"])
        record.metrics = dict(result.get("metrics") or {})
        record.promotion = result.get("promotion")
        record.dataset_count = int((result.get("dataset") or {}).get("count") or 0)
        record.completion_time = datetime.now(UTC).isoformat()
        record.seconds = round(time.monotonic() - began, 1)
        self._save()
        gate = record.promotion or {"passed": True, "reason": "no gate"}
        verdict = "passed" if gate.get("passed", True) else "failed"
        f1 = record.metrics.get("macro_f1")
        self.say(
            f"round {number}: version {record.model_version} on {record.dataset_count} "
            f"example(s), macro-F1 {f1 if f1 is None else round(f1, 3)}, gate {verdict}"
            f" ({gate.get('reason', '')})"
        )
        return record

    # -- rollout ----------------------------------------------------------------------------------

    def _target(self) -> Target | None:
        """The version the PrelabelService asks for now: `loop.serving.choose_version`, as the
        operator chooses it; None means none yet, and the zero-shot server serves (round 0)."""
        service = self.project.service
        assert service is not None
        jobs = [r.as_job(self.project.name) for r in self.state.rounds]
        return serving.choose_version(service, jobs).target

    def _rollout(self, tasks: list[Task]) -> tuple[str, bool]:
        """One rollout step; (what it says, whether a rollout is under way)."""
        service = self.project.service
        if service is None:
            return "no PrelabelService", False
        target = self._target()
        if target is None:
            return "no version to serve yet: zero-shot prelabels (round 0)", False
        measured = acceptance.by_version(tasks, self.schema)
        observed = {
            version: Observed(
                ready_replicas=service.replicas if server.healthy() else 0,
                prelabel_accuracy=measured.get(version, acceptance.Acceptance()).accuracy(),
            )
            for version, server in self.servers.items()
        }
        plan = plan_rollout(
            rollout=service.rollout,
            replicas=service.replicas,
            history_limit=service.revision_history_limit,
            current=self.rollout_state,
            target=target,
            observed=observed,
            now=datetime.now(UTC),
        )
        self.rollout_state, self.plan = plan.state, plan
        for reason, message in plan.events:
            self.say(f"{reason}: {message}")
        for version, replicas in plan.replicas.items():
            server = self.servers.get(version)
            if replicas > 0 and (server is None or not server.running):
                self._start_version(version)
            elif replicas == 0 and server is not None and server.running:
                server.stop()
        for version in plan.retired:
            gone = self.servers.pop(version, None)
            if gone is not None:
                gone.stop()
        if self.rollout_state.active is not None and self.zero_shot is not None:
            self.zero_shot.stop()
            self.zero_shot = None
        return plan.message, plan.health == "reconciling"

    def _start_version(self, version: str) -> None:
        known = self.rollout_state.get(version)
        assert known is not None
        directory = self.options.volumes.path(known.uri, "artifactUri")
        server = self.servers.get(version) or PrelabelServer.for_version(
            version, directory, self.work_dir / "logs"
        )
        self.servers[version] = server
        server.start()

    def _needs_zero_shot(self) -> bool:
        return (
            self.project.service is not None
            and self.project.spec.training is not None
            and self.rollout_state.active is None
        )

    def _start_zero_shot(self) -> None:
        training = self.project.spec.training
        assert training is not None
        base = self.options.volumes.path(training.template.base_model.uri, "baseModel.uri")
        self.zero_shot = PrelabelServer.zero_shot(base, self.work_dir / "logs")
        self.zero_shot.start()

    def _serving(self) -> PrelabelServer | None:
        """The healthy server whose prelabels annotators get now."""
        plan, state = self.plan, self.rollout_state
        wanted: list[PrelabelServer | None] = []
        if plan is not None and plan.serve_all_versions and state.target is not None:
            wanted.append(self.servers.get(state.target))  # the canary
        if state.active is not None:
            wanted.append(self.servers.get(state.active))
        else:
            wanted.append(self.zero_shot)
        for server in wanted:
            if server is not None and server.healthy():
                return server
        return None

    # -- prelabels --------------------------------------------------------------------------------

    def _ensure_backend(self, server: PrelabelServer) -> None:
        """The serving version's server as the project's one ML backend of ours
        (`steps.prelabel.register_backend`, as the operator registers it).

        A Label Studio that cannot reach this machine's 127.0.0.1 (an external server
        elsewhere) refuses it; prelabels still arrive, imported by the prelabel pass.
        """
        assert server.url is not None and self.project.service_name is not None
        backend = register_backend(self.ls, self.project_id, self.project.service_name, server.url)
        if backend.refused is not None and self._refused != server.url:
            self.say(backend.refused)
        self._refused = server.url if backend.refused is not None else None

    def _prelabel(self, tasks: list[Task], server: PrelabelServer) -> PrelabelPass:
        """The operator's prelabel pass (`steps.prelabel.prelabel_pass`): ask the serving
        version about every unlabelled task without its prediction, import the most
        informative batch."""
        assert server.url is not None and self.project.spec.prelabel is not None
        order = self.project.spec.prelabel.active_learning
        began = time.monotonic()
        try:
            with MLBackendClient(server.url) as backend:
                version = backend.model_version()
        except MLBackendError as exc:
            raise RunnerError(f"prelabel server: {exc}") from None
        outcome = prelabel_pass(
            self.ls,
            project_id=self.project_id,
            tasks=tasks,
            url=server.url,
            version=version,
            label_config=self.project.spec.project.label_config,
            strategy=order.strategy,
            batch_size=order.batch_size,
            cache=self.answers,
            cache_id=self.state.project_uid,
            chunk=self.options.predict_chunk,
            cold_start=self.rollout_state.active is None,
        )
        if outcome.server_error is not None:
            # The operator reports PrelabelServerFailed and retries; a local run stops here.
            raise RunnerError(f"prelabel server of {version}: {outcome.server_error}")
        answers = self._seen.setdefault(version, {})
        answers.update(outcome.answers)
        if outcome.agreement is not None:
            self.agreements.append(round(outcome.agreement, 4))
            self.say(f"{version} agrees with the version before at kappa {outcome.agreement:.3f}")
        if outcome.chosen:
            imported = f"{len(outcome.chosen)} prediction(s) of {version} imported"
            self.say(f"{imported} ({order.strategy} order)")
        open_tasks = [t for t in tasks if prelabels.unlabelled(t) and t.id in answers]
        shown = {t.id for t in open_tasks if any(p.model_version == version for p in t.predictions)}
        queue = active_learning.rank(
            prelabels.rank_inputs(
                {i: answers[i] for i in sorted(shown | set(outcome.chosen))}, version
            ).candidates,
            order.strategy,
            seed=self.project_id,
        )
        self.last_pass = PrelabelPass(
            version=version,
            predictions={t.id: answers[t.id] for t in open_tasks},
            queue=queue,
            imported=len(outcome.chosen),
            predicted=outcome.asked,
            seconds=round(time.monotonic() - began, 1),
            stopping=active_learning.stopping_signal(self.agreements, order.stability),
        )
        return self.last_pass
