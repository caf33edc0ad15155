"""`labelloop run`'s loop end to end: a real Label Studio, the trainer and prelabel servers.

Two rounds on 81 toy tasks with the tiny model: round 0 prelabels with the zero-shot server
(its batch a random sample: the cold-start rule), annotations arrive through the Label Studio
API in the queue's order, each batch of 20 starts a round (`loop.trigger`), the trainer
exports the round's snapshot from Label Studio and trains on it, the new version rolls out
(`loop.rollout`) and becomes the project's ML backend, and its most informative prelabels go
into Label Studio as the next queue.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.labelstudio import LabelStudioServer
from labelloop.api.labelconfig import build_result
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.local import manifests
from labelloop.local.runner import LocalRunner, RunnerOptions
from labelloop.local.volumes import Volumes
from labelloop.loop.active_learning import rank
from labelloop.loop.prelabels import rank_inputs
from trainer.support import build_tiny_model, toy_sentences

pytestmark = [pytest.mark.labelstudio, pytest.mark.trainer]

BATCH = 20
LABEL_CONFIG = """\
      <View>
        <Text name="text" value="$text"/>
        <Choices name="label" toName="text" choice="single">
          <Choice value="pos"/><Choice value="neg"/><Choice value="neu"/>
        </Choices>
      </View>"""


def write_manifests(directory: Path, url: str, token: str, texts: list[str]) -> Path:
    inline = json.dumps([{"text": t} for t in texts])
    (directory / "00-cluster.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n---\n"
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: ls}}\nstringData: {{token: {token}}}\n"
    )
    (directory / "10-loop.yaml").write_text(f"""\
apiVersion: labelloop.io/v1alpha1
kind: AnnotationProject
metadata: {{name: toy, namespace: ml}}
spec:
  labelStudio: {{external: {{url: "{url}"}}}}
  credentialsSecretRef: {{name: ls, key: token}}
  project:
    title: local runner toy
    labelConfig: |
{LABEL_CONFIG}
  data: {{inline: {inline}}}
  training:
    trigger: {{newAnnotations: {BATCH}}}
    template:
      baseModel: {{uri: "pvc://models/base"}}
      output: {{uri: "pvc://models/toy"}}
      method: {{lora: {{r: 8, dropout: 0.0}}}}
      hyperparameters: {{learningRate: 0.02, batchSize: 8, epochs: 3, warmupRatio: 0.0,
                        lrScheduler: linear, maxSequenceLength: 16}}
      resources: {{gpusPerNode: 0}}
  prelabel:
    serviceRef: {{name: toy-prelabel}}
    activeLearning: {{strategy: uncertainty, batchSize: {BATCH}}}
---
apiVersion: labelloop.io/v1alpha1
kind: PrelabelService
metadata: {{name: toy-prelabel, namespace: ml}}
spec:
  annotationProjectRef: {{name: toy}}
  model: {{fineTuneJobRef: {{name: toy-r1}}}}
  autoPromote: true
  rollout: {{strategy: BlueGreen, readyDeadlineSeconds: 300}}
""")
    return directory


def holding(ls: LabelStudioClient, project_id: int, version: str) -> list[int]:
    """Unlabelled tasks that hold a prediction of `version`."""
    return [
        t.id
        for t in ls.iter_tasks(project_id)
        if not t.annotations and any(p.model_version == version for p in t.predictions)
    ]


def test_two_rounds_end_to_end(label_studio: LabelStudioServer, tmp_path: Path) -> None:
    rows = toy_sentences(27)
    gold = {r["text"]: r["label"] for r in rows}
    (tmp_path / "manifests").mkdir()
    directory = write_manifests(
        tmp_path / "manifests", label_studio.url, label_studio.token, list(gold)
    )
    found = manifests.load(directory)
    assert [n.split(": ", 1)[1] for n in found.notes] == ["skipped Namespace ml (not used locally)"]
    models = tmp_path / "models"
    models.mkdir()
    (models / "base").symlink_to(build_tiny_model())
    options = RunnerOptions(
        work_dir=tmp_path / "work", volumes=Volumes(tmp_path / "volumes", {"models": models})
    )
    said: list[str] = []
    annotator = label_studio.create_user("runner-annotator")

    with LocalRunner(found.project(), found, options, say=said.append) as runner:
        runner.start()
        ls = LabelStudioClient(label_studio.url, label_studio.token)
        tasks = list(ls.iter_tasks(runner.project_id))
        assert sorted(t.data["text"] for t in tasks) == sorted(gold)

        # Round 0: the zero-shot server answers for every task, is the ML backend, and its
        # most informative batch goes into Label Studio (the operator's prelabel step).
        runner.settle(timeout_s=600)
        zero = runner.last_pass
        assert zero is not None and zero.version.startswith("zero-shot-")
        assert sorted(zero.predictions) == sorted(t.id for t in tasks)
        assert sorted(zero.queue) == sorted(holding(ls, runner.project_id, zero.version))
        assert zero.imported == BATCH == len(zero.queue)
        backends = ls.list_ml_backends(runner.project_id)
        assert runner.zero_shot is not None
        assert [(b.url, b.title) for b in backends] == [
            (runner.zero_shot.url, "labelloop: toy-prelabel")
        ]

        versions = []
        for number in (1, 2):
            pending = runner.last_pass
            assert pending is not None
            queue = pending.queue
            assert len(queue) == BATCH
            scores = {i: p["score"] for i, p in pending.predictions.items()}
            if number == 1:
                # Under the zero-shot server: a seeded random sample (the cold-start rule).
                candidates = rank_inputs(pending.predictions, pending.version).candidates
                sample = rank(candidates, "random", seed=runner.project_id)[:BATCH]
                assert sorted(queue) == sorted(sample)
            else:
                # Least confident first: no task left out is less confident than one queued.
                assert max(scores[i] for i in queue) <= min(
                    s for i, s in scores.items() if i not in queue
                )
            texts = {t.id: t.data["text"] for t in tasks}
            for task_id in queue:
                result = build_result(runner.schema, [gold[texts[task_id]]])
                ls.create_annotation(task_id, result, completed_by=annotator)

            outcome = runner.step()
            trained = outcome.trained
            assert trained is not None and trained.phase == "Succeeded", trained
            assert trained.round == number
            assert trained.dataset_count == BATCH * number
            assert trained.model_version is not None
            runner.settle(timeout_s=600)
            assert runner.rollout_state.active == trained.model_version
            versions.append(trained.model_version)

            served = runner.last_pass
            assert served is not None and served.version == trained.model_version
            # The new version's first batch is in, and it is the queue.
            assert served.imported == BATCH
            assert sorted(served.queue) == sorted(
                holding(ls, runner.project_id, trained.model_version)
            )
            assert len(served.predictions) == len(gold) - BATCH * number
            [backend] = ls.list_ml_backends(runner.project_id)
            assert backend.url == runner.servers[trained.model_version].url

        assert runner.zero_shot is None  # stopped once a fine-tuned version was active
        assert runner.rollout_state.previous == versions[0]
        assert not runner.servers[versions[0]].running  # kept for rollback at zero replicas
        state = json.loads((options.work_dir / "state.json").read_text())
        assert [r["phase"] for r in state["rounds"]] == ["Succeeded", "Succeeded"]
        assert state["rounds"][0]["cutoff"] < state["rounds"][1]["cutoff"]
        for version in versions:
            assert (models / "toy" / version / "adapter").is_dir()
        servers = list(runner.servers.values())
        ls.close()

    assert not any(s.running for s in servers)
