"""The project itself and its tasks: created once, kept as the spec says, each row imported once.

`ensure_project` creates the Label Studio project when there is none yet and calls `record`
with its id at once, before anything else can fail, so the caller can store the id (the
operator on the AnnotationProject, the local runner in its state file) and a crash never
leads to a second project. `import_data` reads `spec.data` (inline rows, a ConfigMap key or a
URL of JSON, JSONL or CSV) and imports the rows the project lacks; each task carries a stable
key in its data (`loop.importing`), so repeating the step imports nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from ..api.annotationproject import AnnotationProjectSpec, DataSource
from ..api.labelconfig import LabelSchema
from ..labelstudio.client import LabelStudioClient
from ..labelstudio.models import Task
from ..loop import counting, importing

IMPORT_BATCH = 500
FETCH_TIMEOUT_S = 30.0

ConfigMaps = Callable[[str], Mapping[str, str] | None]
"""The data of a ConfigMap of the project's namespace by name; None when there is none."""


class DataSourceUnavailable(Exception):
    """`spec.data` could not be read (a missing ConfigMap, an unreachable URL)."""


def ensure_project(
    ls: LabelStudioClient,
    spec: AnnotationProjectSpec,
    known_id: int | None,
    record: Callable[[int], None],
) -> int:
    """The project's id, after creating it if needed and syncing title, description, config.

    `record` is called with a new project's id at once, before anything else can fail.
    """
    wanted = spec.project
    if known_id is None:
        ls.validate_label_config(wanted.label_config)
        project_id = ls.create_project(wanted.title, wanted.description, wanted.label_config)
        record(project_id)
        return project_id
    project = ls.get_project(known_id)
    changes: dict[str, str] = {}
    if project.title != wanted.title:
        changes["title"] = wanted.title
    if project.description != wanted.description:
        changes["description"] = wanted.description
    if project.label_config != wanted.label_config:
        ls.validate_label_config(wanted.label_config, known_id)
        changes["label_config"] = wanted.label_config
    if changes:
        ls.update_project(known_id, **changes)
    return known_id


def read_source(source: DataSource, config_maps: ConfigMaps) -> tuple[str, importing.Format]:
    """(text, format) of a ConfigMap or URL source."""
    if source.config_map_ref is not None:
        ref = source.config_map_ref
        data = config_maps(ref.name)
        if data is None:
            raise DataSourceUnavailable(f"ConfigMap {ref.name} not found")
        text = data.get(ref.key)
        if text is None:
            raise DataSourceUnavailable(f"ConfigMap {ref.name} has no key {ref.key!r}")
        return text, importing.guess_format(ref.key, text=text)
    assert source.url is not None
    try:
        response = httpx.get(source.url, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DataSourceUnavailable(f"GET {source.url}: {exc}") from None
    text = response.text
    fmt = importing.guess_format(source.url, response.headers.get("content-type"), text)
    return text, fmt


def parse_source(
    source: DataSource, schema: LabelSchema, config_maps: ConfigMaps
) -> importing.ParsedRows:
    if source.inline is not None:
        candidates = [(f"item {i + 1}", row) for i, row in enumerate(source.inline)]
        return importing.check_rows(candidates, schema.data_key)
    text, fmt = read_source(source, config_maps)
    return importing.parse_rows(text, fmt, schema.data_key)


def import_tasks(
    ls: LabelStudioClient, project_id: int, parsed: importing.ParsedRows, present: frozenset[str]
) -> int:
    """Import the rows not present yet; return how many were sent."""
    payloads = importing.tasks_to_import(parsed.rows, present)
    for start in range(0, len(payloads), IMPORT_BATCH):
        ls.import_tasks(project_id, payloads[start : start + IMPORT_BATCH])
    return len(payloads)


@dataclass(frozen=True)
class Imported:
    """What `import_data` did."""

    tasks: list[Task]
    """The project's tasks afterwards (re-read when anything was sent)."""
    unavailable: str | None = None
    """Why the source could not be read; nothing was imported then."""
    sent: int = 0
    """Rows imported by this step."""
    rows: int = 0
    """Well-formed rows in the source."""
    imported: int = 0
    """Rows of the source present in the project now."""
    malformed: int = 0
    message: str | None = None
    """`loop.importing.describe`: the malformed rows, briefly; None when all were fine."""


def import_data(
    ls: LabelStudioClient,
    project_id: int,
    source: DataSource,
    *,
    schema: LabelSchema,
    config_maps: ConfigMaps,
    tasks: Sequence[Task],
) -> Imported:
    """Import the rows of `source` that the project's `tasks` do not hold yet."""
    try:
        parsed = parse_source(source, schema, config_maps)
    except DataSourceUnavailable as exc:
        return Imported(list(tasks), unavailable=str(exc))
    sent = import_tasks(ls, project_id, parsed, counting.tally(tasks, schema, 0).keys)
    now = list(ls.iter_tasks(project_id)) if sent else list(tasks)
    keys = {importing.row_key(r) for r in parsed.rows}
    return Imported(
        tasks=now,
        sent=sent,
        rows=len(parsed.rows),
        imported=len(keys & counting.tally(now, schema, 0).keys),
        malformed=parsed.malformed,
        message=importing.describe(parsed),
    )
