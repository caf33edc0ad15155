"""Many projects on one Label Studio: their counters in few requests, the poller that wakes
the projects that moved, and a webhook Label Studio disabled enabled again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fixtures.labelstudio import LabelStudioServer
from labelloop import metrics
from labelloop.api.labelconfig import build_result, parse_label_config
from labelloop.controllers.label_studio_poll import LabelStudioPoll
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.pool import LabelStudioClients
from labelloop.metrics import ObjectKey
from labelloop.resources.common import Owner
from labelloop.steps.webhook import SECRET_HEADER, WEBHOOK_ACTIONS, ensure_webhook

pytestmark = pytest.mark.labelstudio

CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text" choice="single">'
    '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
)
SCHEMA = parse_label_config(CONFIG)


@pytest.fixture
def clients(label_studio: LabelStudioServer) -> Iterator[LabelStudioClients]:
    pool = LabelStudioClients(per_server=2)
    yield pool
    pool.close()


def make_project(ls: LabelStudioClient, title: str, tasks: int = 2) -> int:
    project_id = ls.create_project(title, "", CONFIG)
    ls.import_tasks(project_id, [{"text": f"{title} {i}"} for i in range(tasks)])
    return project_id


def requests_sent() -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "labelloop_label_studio_requests"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_the_counters_of_many_projects_come_in_one_request_per_hundred(
    label_studio: LabelStudioServer, clients: LabelStudioClients
) -> None:
    ls = clients.client(label_studio.url, label_studio.token)
    assert clients.client(label_studio.url + "/", label_studio.token) is ls  # one per server
    ids = [make_project(ls, f"counted {i}", tasks=i + 1) for i in range(3)]
    before = requests_sent()
    counts = ls.project_counts([*ids, 999_999])  # a project that does not exist is left out
    assert requests_sent() - before == 1
    assert sorted(counts) == sorted(ids)
    assert [counts[i].tasks for i in ids] == [1, 2, 3]
    assert all(counts[i].annotations == 0 for i in ids)


def test_the_poller_wakes_only_the_projects_whose_counters_moved(
    label_studio: LabelStudioServer, clients: LabelStudioClients
) -> None:
    ls = clients.client(label_studio.url, label_studio.token)
    quiet, busy = make_project(ls, "quiet"), make_project(ls, "busy")
    poll = LabelStudioPoll()
    owners = {name: Owner("AnnotationProject", name, "team", f"uid-{name}") for name in ("q", "b")}
    poll.follow(owners["q"], ls, quiet)
    poll.follow(owners["b"], ls, busy)
    assert poll.poll() == []  # the first look only learns the counters

    task = next(iter(ls.iter_tasks(busy)))
    ls.create_annotation(task.id, build_result(SCHEMA, ["Positive"]))
    before = requests_sent()
    assert poll.poll() == [ObjectKey("AnnotationProject", "team", "b")]
    assert requests_sent() - before == 1  # both projects, one request
    assert poll.poll() == []

    poll.forget(ObjectKey("AnnotationProject", "team", "b"))
    ls.create_annotation(task.id, build_result(SCHEMA, ["Negative"]))
    assert poll.poll() == []


def test_a_webhook_label_studio_disabled_is_enabled_again(
    label_studio: LabelStudioServer, clients: LabelStudioClients
) -> None:
    ls = clients.client(label_studio.url, label_studio.token)
    project_id = make_project(ls, "hooked")
    path = "/webhook/team/hooked"
    wanted = (f"http://127.0.0.1:9{path}", "secret")
    ensure_webhook(ls, project_id, path, wanted)
    (hook,) = ls.list_webhooks(project_id)
    # What Label Studio does after repeated failed deliveries.
    ls.update_webhook(
        hook.id, actions=WEBHOOK_ACTIONS, headers={SECRET_HEADER: "secret"}, is_active=False
    )
    assert not ls.list_webhooks(project_id)[0].is_active
    ensure_webhook(ls, project_id, path, wanted)
    (again,) = ls.list_webhooks(project_id)
    assert again.id == hook.id and again.is_active
