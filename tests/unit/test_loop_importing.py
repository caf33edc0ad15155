"""Reading task sources and importing each row once."""

from __future__ import annotations

import pytest

from labelloop.loop.importing import (
    KEY_FIELD,
    MAX_PROBLEMS,
    Format,
    describe,
    guess_format,
    parse_rows,
    row_key,
    tasks_to_import,
)


@pytest.mark.parametrize(
    ("name", "content_type", "text", "expected"),
    [
        ("tasks.json", None, "", "json"),
        ("tasks.JSONL", None, "", "jsonl"),
        ("tasks.ndjson", None, "", "jsonl"),
        ("tasks.csv", None, "", "csv"),
        ("https://x.test/tasks.csv?version=2", None, "", "csv"),
        ("https://x.test/download", "application/json; charset=utf-8", "", "json"),
        ("https://x.test/download", "application/x-ndjson", "", "jsonl"),
        ("https://x.test/download", "text/csv", "", "csv"),
        ("tasks", None, '[{"text": "a"}]', "json"),
        ("tasks", None, '{"text": "a"}\n{"text": "b"}\n', "jsonl"),
        ("tasks", None, '{"text": "a"}', "json"),
        ("tasks", None, "text\na\n", "csv"),
    ],
)
def test_format_from_name_type_or_text(
    name: str, content_type: str | None, text: str, expected: Format
) -> None:
    assert guess_format(name, content_type, text) == expected


@pytest.mark.parametrize(
    ("fmt", "text", "rows", "malformed", "problem"),
    [
        (
            "json",
            '[{"text": "a"}, {"text": "b", "id": 7}]',
            [{"text": "a"}, {"text": "b", "id": 7}],
            0,
            None,
        ),
        ("json", '{"text": "only"}', [{"text": "only"}], 0, None),
        ("json", '[{"data": {"text": "wrapped"}}]', [{"text": "wrapped"}], 0, None),
        ("json", '[1, {"title": "x"}, {"text": ""}]', [], 3, "item 1: expected an object, got int"),
        ("json", "[{", [], 1, "not valid JSON"),
        ("json", "  ", [], 0, None),
        (
            "jsonl",
            '{"text": "a"}\n\n{oops\n{"text": "c"}\n',
            [{"text": "a"}, {"text": "c"}],
            1,
            "line 3:",
        ),
        ("jsonl", '{"title": "no text"}\n', [], 1, "line 1: no 'text' field"),
        (
            "csv",
            'text,source\nhello,web\n"a, b",app\n',
            [{"text": "hello", "source": "web"}, {"text": "a, b", "source": "app"}],
            0,
            None,
        ),
        (
            "csv",
            "text,source\nhello,web,extra\nshort\n,web\n",
            [],
            3,
            "line 2: wrong number of columns",
        ),
    ],
)
def test_rows_and_malformed_rows(
    fmt: Format, text: str, rows: list[dict[str, str]], malformed: int, problem: str | None
) -> None:
    parsed = parse_rows(text, fmt, "text")
    assert list(parsed.rows) == rows
    assert parsed.malformed == malformed
    message = describe(parsed)
    if problem is None:
        assert message is None
    else:
        assert message is not None and problem in message


def test_many_problems_are_counted_but_only_a_few_spelt_out() -> None:
    parsed = parse_rows("\n".join(["{bad"] * 12), "jsonl", "text")
    assert parsed.malformed == 12
    assert len(parsed.problems) == MAX_PROBLEMS
    assert describe(parsed) is not None and f"and {12 - MAX_PROBLEMS} more" in str(describe(parsed))


def test_the_key_is_stable_and_ignores_field_order() -> None:
    assert row_key({"text": "a", "n": 1}) == row_key({"n": 1, "text": "a"})
    assert row_key({"text": "a"}) != row_key({"text": "b"})


@pytest.mark.parametrize(
    ("rows", "existing", "expected_texts"),
    [
        ([{"text": "a"}, {"text": "b"}], [], ["a", "b"]),
        ([{"text": "a"}, {"text": "b"}], [row_key({"text": "a"})], ["b"]),
        ([{"text": "a"}, {"text": "b"}], [row_key({"text": "a"}), row_key({"text": "b"})], []),
        # Identical rows are one task.
        ([{"text": "a"}, {"text": "a"}], [], ["a"]),
    ],
)
def test_only_rows_not_present_are_imported(
    rows: list[dict[str, str]], existing: list[str], expected_texts: list[str]
) -> None:
    payloads = tasks_to_import(rows, existing)
    assert [p["data"]["text"] for p in payloads] == expected_texts
    for payload in payloads:
        assert payload["meta"] == {KEY_FIELD: row_key(payload["data"])}


def test_a_second_run_with_what_the_first_imported_imports_nothing() -> None:
    rows = parse_rows("text\nx\ny\n", "csv", "text").rows
    first = tasks_to_import(rows, [])
    assert tasks_to_import(rows, [p["meta"][KEY_FIELD] for p in first]) == []
