"""The slow fallback to webhooks: a few requests per Label Studio server find the projects
that changed.

Each project's pass tells the poller where its Label Studio project is (`follow`). Every
`OperatorConfig.label_studio_poll_seconds` the poller asks each server for the counters of
all the projects it holds, a hundred to a request (`LabelStudioClient.project_counts`), and
wakes the AnnotationProjects whose counters moved (`moved`): annotations made while a webhook
was lost, disabled by Label Studio or never registered (no receiver) are seen within a poll,
at the cost of a handful of requests per server rather than a full pass per project. A
counter that stays put (an annotation edited in place) waits for a webhook or the resync.
A server that stops answering wakes its projects once, so that each reports the outage (and its
connection deadline starts) within a poll; their passes then retry on their own schedule.
The operator's task that polls is started with kopf (`controllers.watches`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from ..labelstudio.client import LabelStudioClient
from ..labelstudio.errors import LabelStudioError
from ..labelstudio.models import ProjectCounts
from ..metrics import ObjectKey
from ..resources.common import Owner

logger = logging.getLogger(__name__)


def moved(before: Mapping[int, ProjectCounts], now: Mapping[int, ProjectCounts]) -> set[int]:
    """Projects whose counters differ from the last poll; a project seen for the first time
    has not moved (its pass has just read it), one that is gone has."""
    return {i for i, counts in before.items() if now.get(i) != counts}


class LabelStudioPoll:
    """Which AnnotationProject lives where, and the counters seen at the last poll."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._where: dict[ObjectKey, tuple[LabelStudioClient, int]] = {}
        self._seen: dict[LabelStudioClient, dict[int, ProjectCounts]] = {}
        self._failing: set[LabelStudioClient] = set()

    def follow(self, owner: Owner, ls: LabelStudioClient, project_id: int) -> None:
        """The project of `owner` is `project_id` on the server of `ls` (its shared client)."""
        with self._lock:
            self._where[ObjectKey(owner.kind, owner.namespace, owner.name)] = (ls, project_id)

    def forget(self, key: ObjectKey) -> None:
        with self._lock:
            self._where.pop(key, None)

    def poll(self) -> list[ObjectKey]:
        """Ask every server once for its projects' counters; the projects that moved, and
        all of a server's projects when it has just stopped answering. A server that fails is
        asked again at the next poll."""
        with self._lock:
            servers: dict[LabelStudioClient, dict[int, list[ObjectKey]]] = {}
            for key, (ls, project_id) in self._where.items():
                servers.setdefault(ls, {}).setdefault(project_id, []).append(key)
        woken: list[ObjectKey] = []
        for ls, projects in servers.items():
            try:
                now = ls.project_counts(list(projects))
            except LabelStudioError as error:
                with self._lock:
                    newly = ls not in self._failing
                    self._failing.add(ls)
                if newly:
                    logger.info("polling Label Studio at %s failed: %s", ls.url, error)
                    woken.extend(key for keys in projects.values() for key in keys)
                continue
            with self._lock:
                self._failing.discard(ls)
                before = self._seen.get(ls, {})
                self._seen[ls] = {i: c for i, c in now.items() if i in projects}
            for project_id in moved({i: c for i, c in before.items() if i in projects}, now):
                woken.extend(projects[project_id])
        return woken
