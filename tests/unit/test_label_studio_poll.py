"""The Label Studio poller: its first look at a project, and a server that stops answering."""

from __future__ import annotations

from typing import cast

from labelloop.controllers.label_studio_poll import LabelStudioPoll
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.errors import LabelStudioUnreachable
from labelloop.labelstudio.models import ProjectCounts
from labelloop.metrics import ObjectKey
from labelloop.resources.common import Owner


class Server:
    """Stands in for a shared client: counters (annotations by project), or an outage."""

    url = "http://label-studio.test:8080"

    def __init__(self) -> None:
        self.up = True
        self.annotations: dict[int, int] = {}
        self.requests = 0

    def project_counts(self, ids: list[int]) -> dict[int, ProjectCounts]:
        self.requests += 1
        if not self.up:
            raise LabelStudioUnreachable(f"cannot reach {self.url}")
        return {
            i: ProjectCounts(id=i, tasks=10, annotations=n, skipped=0, predictions=0)
            for i, n in self.annotations.items()
            if i in ids
        }


def owner(name: str) -> Owner:
    return Owner("AnnotationProject", name, "team", f"uid-{name}")


def test_an_annotation_between_a_pass_and_the_first_poll_is_a_move() -> None:
    server, poll = Server(), LabelStudioPoll()
    client = cast(LabelStudioClient, server)
    server.annotations = {1: 5, 2: 0}
    poll.follow(owner("a"), client, 1)  # the pass, just before it reads the project
    poll.follow(owner("b"), client, 2)
    server.annotations[1] = 6  # after the read; its webhook was refused or lost
    assert poll.poll() == [ObjectKey("AnnotationProject", "team", "a")]
    assert poll.poll() == []
    # The project's later passes cost the poller no request.
    before = server.requests
    poll.follow(owner("a"), client, 1)
    assert server.requests == before
    # A project forgotten is no longer asked about, nor woken.
    poll.forget(ObjectKey("AnnotationProject", "team", "a"))
    server.annotations[1] = 7
    assert poll.poll() == []


def test_a_server_that_stops_answering_wakes_its_projects_once() -> None:
    server, poll = Server(), LabelStudioPoll()
    client = cast(LabelStudioClient, server)
    for name, project_id in (("a", 1), ("b", 2)):
        poll.follow(owner(name), client, project_id)
    assert poll.poll() == []
    server.up = False
    assert set(poll.poll()) == {
        ObjectKey("AnnotationProject", "team", "a"),
        ObjectKey("AnnotationProject", "team", "b"),
    }
    assert poll.poll() == []  # still down: the projects retry on their own schedule
    server.up = True
    assert poll.poll() == []
    server.up = False
    assert len(poll.poll()) == 2  # a new outage wakes them again
