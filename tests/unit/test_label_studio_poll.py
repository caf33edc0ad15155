"""The Label Studio poller: a server that stops answering wakes its projects once."""

from __future__ import annotations

from typing import cast

from labelloop.controllers.label_studio_poll import LabelStudioPoll
from labelloop.labelstudio.client import LabelStudioClient
from labelloop.labelstudio.errors import LabelStudioUnreachable
from labelloop.labelstudio.models import ProjectCounts
from labelloop.metrics import ObjectKey
from labelloop.resources.common import Owner


class Server:
    """Stands in for a shared client: counters, or an outage."""

    url = "http://label-studio.test:8080"

    def __init__(self) -> None:
        self.up = True

    def project_counts(self, ids: list[int]) -> dict[int, ProjectCounts]:
        if not self.up:
            raise LabelStudioUnreachable(f"cannot reach {self.url}")
        return {}


def test_a_server_that_stops_answering_wakes_its_projects_once() -> None:
    server, poll = Server(), LabelStudioPoll()
    client = cast(LabelStudioClient, server)
    for name, project_id in (("a", 1), ("b", 2)):
        poll.follow(Owner("AnnotationProject", name, "team", f"uid-{name}"), client, project_id)
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
