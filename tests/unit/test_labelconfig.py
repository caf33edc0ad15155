"""Label config parsing and result JSON, table by table."""

from __future__ import annotations

from typing import Any

import pytest

from labelloop.api.labelconfig import (
    LabelConfigError,
    LabelSchema,
    Span,
    TaskType,
    build_result,
    parse_label_config,
    read_result,
)

SENTIMENT = """
<View>
  <Header value="How does the sentence feel?"/>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text" choice="single" showInLine="true">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>
"""
SINGLE = LabelSchema(
    TaskType.SINGLE_LABEL, "label", "text", "text", ("Positive", "Negative", "Neutral")
)
MULTI = LabelSchema(TaskType.MULTI_LABEL, "topics", "review", "body", ("food", "service"))
NER = LabelSchema(TaskType.NER, "ents", "doc", "content", ("PER", "ORG"))


@pytest.mark.parametrize(
    ("xml", "expected"),
    [
        pytest.param(SENTIMENT, SINGLE, id="single"),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices name="c" toName="t">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            LabelSchema(TaskType.SINGLE_LABEL, "c", "t", "x", ("a", "b")),
            id="single-by-default",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices name="c" toName="t" choice="single-radio">'
            '<Choice value="a"/></Choices></View>',
            LabelSchema(TaskType.SINGLE_LABEL, "c", "t", "x", ("a",)),
            id="single-radio",
        ),
        pytest.param(
            '<View><Text name="review" value="$body"/>'
            '<Choices name="topics" toName="review" choice="multiple">'
            '<Choice value="food"/><Choice value="service"/></Choices></View>',
            MULTI,
            id="multiple",
        ),
        pytest.param(
            '<View><Labels name="ents" toName="doc"><Label value="PER"/><Label value="ORG"/>'
            '</Labels><Text name="doc" value="$content"/></View>',
            NER,
            id="ner-control-before-object",
        ),
        pytest.param(
            '<View><View><Text name="t" value="$x"/></View><View><Choices name="c" toName="t">'
            '<Choice value="long name" alias="short"/><Choice value="b"/></Choices></View></View>',
            LabelSchema(TaskType.SINGLE_LABEL, "c", "t", "x", ("short", "b")),
            id="nested-views-and-alias",
        ),
    ],
)
def test_parse_label_config(xml: str, expected: LabelSchema) -> None:
    assert parse_label_config(xml) == expected


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        pytest.param("<View><Text", "not well-formed XML", id="broken-xml"),
        pytest.param("<Foo/>", "must start with <View>", id="root"),
        pytest.param('<View><Text name="t" value="$x"/></View>', "found 0", id="no-control"),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices name="a" toName="t"><Choice value="x"/>'
            '</Choices><Choices name="b" toName="t"><Choice value="y"/></Choices></View>',
            "found 2 (<Choices name='a'>, <Choices name='b'>)",
            id="two-controls",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><TextArea name="a" toName="t"/></View>',
            "unsupported control tag <TextArea>",
            id="textarea",
        ),
        pytest.param(
            '<View><Image name="i" value="$img"/><Choices name="c" toName="i">'
            '<Choice value="x"/></Choices></View>',
            "points at <Image>; only <Text>",
            id="image",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices name="c" toName="nope">'
            '<Choice value="x"/></Choices></View>',
            'no <Text name="nope"> found',
            id="dangling-toName",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Text name="u" value="$y"/>'
            '<Choices name="c" toName="t,u"><Choice value="x"/></Choices></View>',
            "must name exactly one <Text>",
            id="two-targets",
        ),
        pytest.param(
            '<View><Text name="t" value="plain"/><Choices name="c" toName="t">'
            '<Choice value="x"/></Choices></View>',
            'value="$text"',
            id="constant-value",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices name="c" toName="t" choice="some">'
            '<Choice value="x"/></Choices></View>',
            'choice="some"; allowed: single, single-radio, multiple',
            id="choice-mode",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices name="c" toName="t"/></View>',
            "<Choices> has no <Choice> children",
            id="no-choices",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Labels name="l" toName="t">'
            '<Label value="A"/><Label value="A"/></Labels></View>',
            "more than once: ['A']",
            id="duplicate-label",
        ),
        pytest.param(
            '<View><Text name="t" value="$x"/><Choices toName="t"><Choice value="x"/>'
            "</Choices></View>",
            "<Choices> needs a name attribute",
            id="nameless-control",
        ),
    ],
)
def test_parse_label_config_refuses(xml: str, message: str) -> None:
    with pytest.raises(LabelConfigError) as raised:
        parse_label_config(xml)
    assert message in str(raised.value)


def test_every_refusal_says_what_is_allowed() -> None:
    with pytest.raises(LabelConfigError, match=r"allowed: one <Choices"):
        parse_label_config('<View><Text name="t" value="$x"/><Rating name="r" toName="t"/></View>')


CHOICE_REGION = {"from_name": "label", "to_name": "text", "type": "choices"}


@pytest.mark.parametrize(
    ("schema", "values", "score", "expected"),
    [
        pytest.param(
            SINGLE,
            ["Negative"],
            None,
            [{**CHOICE_REGION, "value": {"choices": ["Negative"]}}],
            id="single",
        ),
        pytest.param(
            SINGLE,
            ["Neutral"],
            0.75,
            [{**CHOICE_REGION, "value": {"choices": ["Neutral"]}, "score": 0.75}],
            id="single-with-score",
        ),
        pytest.param(
            MULTI,
            ["food", "service"],
            None,
            [
                {
                    "from_name": "topics",
                    "to_name": "review",
                    "type": "choices",
                    "value": {"choices": ["food", "service"]},
                }
            ],
            id="multiple",
        ),
        pytest.param(MULTI, [], None, [], id="multiple-none"),
        pytest.param(
            NER,
            [Span(0, 5, "Alice", "PER"), Span(15, 19, "ACME", "ORG")],
            0.5,
            [
                {
                    "from_name": "ents",
                    "to_name": "doc",
                    "type": "labels",
                    "value": {"start": 0, "end": 5, "text": "Alice", "labels": ["PER"]},
                    "score": 0.5,
                },
                {
                    "from_name": "ents",
                    "to_name": "doc",
                    "type": "labels",
                    "value": {"start": 15, "end": 19, "text": "ACME", "labels": ["ORG"]},
                    "score": 0.5,
                },
            ],
            id="spans",
        ),
    ],
)
def test_build_result_and_read_it_back(
    schema: LabelSchema, values: list[Any], score: float | None, expected: list[dict[str, Any]]
) -> None:
    result = build_result(schema, values, score)
    assert result == expected
    assert read_result(schema, result) == values


@pytest.mark.parametrize(
    ("schema", "values", "error"),
    [
        pytest.param(SINGLE, ["Positive", "Negative"], ValueError, id="two-for-single"),
        pytest.param(SINGLE, ["Happy"], ValueError, id="unknown-label"),
        pytest.param(NER, [Span(0, 3, "Bob", "LOC")], ValueError, id="unknown-span-label"),
        pytest.param(NER, [Span(4, 4, "", "PER")], ValueError, id="empty-span"),
        pytest.param(NER, ["PER"], TypeError, id="label-for-spans"),
        pytest.param(SINGLE, [Span(0, 1, "a", "Positive")], TypeError, id="span-for-choices"),
    ],
)
def test_build_result_refuses(
    schema: LabelSchema, values: list[Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        build_result(schema, values)


@pytest.mark.parametrize(
    ("schema", "result", "expected"),
    [
        pytest.param(SINGLE, [], [], id="empty"),
        pytest.param(
            SINGLE,
            [
                {"from_name": "other", "to_name": "text", "type": "choices",
                 "value": {"choices": ["Positive"]}},
                {"from_name": "label", "to_name": "text", "type": "textarea",
                 "value": {"text": ["a note"]}},
                {**CHOICE_REGION, "value": {"choices": ["Retired label"]}},
            ],
            ["Retired label"],
            id="other-controls-ignored-stale-labels-kept",
        ),
        pytest.param(
            NER,
            [
                {"id": "r1", "from_name": "ents", "to_name": "doc", "type": "labels",
                 "value": {"start": 0, "end": 9, "text": "Acme Corp", "labels": ["ORG", "PER"]}},
            ],
            [Span(0, 9, "Acme Corp", "ORG"), Span(0, 9, "Acme Corp", "PER")],
            id="region-with-two-labels",
        ),
    ],
)  # fmt: skip
def test_read_result(
    schema: LabelSchema, result: list[dict[str, Any]], expected: list[Any]
) -> None:
    assert read_result(schema, result) == expected
