"""The shared translation helpers: arguments both ways (never double-encoded), minted ids,
tool-result objects, the finish rule, capability overrides and the schema walker."""

from __future__ import annotations

import json

import pytest

from schemas.request import Feature, ToolCall
from workers.providers.features import (
    Unsendable,
    args_object,
    args_text,
    finish_with_calls,
    keep_keywords,
    map_schema,
    mint_id,
    result_object,
    with_overrides,
)

CALL = ToolCall(id="c", name="f", arguments="{}")


@pytest.mark.parametrize(
    ("arguments", "obj"),
    [('{"a": 1}', {"a": 1}), ("", {}), ("  ", {}), ('{"s": "{\\"x\\": 1}"}', {"s": '{"x": 1}'})],
)
def test_args_object(arguments, obj):
    assert args_object(ToolCall(id="c", name="f", arguments=arguments)) == obj


@pytest.mark.parametrize(("arguments", "why"), [("[1]", "JSON object"), ("{oops", "not JSON")])
def test_args_object_refuses(arguments, why):
    with pytest.raises(Unsendable, match=why):
        args_object(ToolCall(id="c", name="f", arguments=arguments))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": [1, "é"]}, '{"a":[1,"é"]}'),
        (None, "{}"),
        ('{"a": 1}', '{"a": 1}'),  # already JSON text: kept, never encoded again
    ],
)
def test_args_text(value, text):
    assert args_text(value) == text


def test_round_trip_is_exact_for_objects():
    obj = {"city": "Paris", "days": [1, 2], "nested": {"q": '{"looks": "like json"}'}}
    assert json.loads(args_text(obj)) == obj
    assert args_object(ToolCall(id="c", name="f", arguments=args_text(obj))) == obj


def test_minted_ids_are_stable_and_distinct():
    assert mint_id(0, "f", "{}") == mint_id(0, "f", "{}")
    assert len({mint_id(0, "f", "{}"), mint_id(1, "f", "{}"), mint_id(0, "g", "{}")}) == 3


@pytest.mark.parametrize(
    ("text", "obj"),
    [('{"t": 1}', {"t": 1}), ("[1]", {"result": [1]}), ("null", {"result": None}), ("hi", {"result": "hi"})],
)  # fmt: skip
def test_result_object(text, obj):
    assert result_object(text) == obj


@pytest.mark.parametrize(
    ("finish", "calls", "expected"),
    [
        ("stop", (CALL,), "tool_calls"),
        ("tool_calls", (), "stop"),
        ("length", (CALL,), "length"),
        ("content_filter", (), "content_filter"),
        (None, (CALL,), "tool_calls"),
    ],
)
def test_finish_with_calls(finish, calls, expected):
    assert finish_with_calls(finish, calls) == expected


def test_with_overrides():
    base = frozenset({Feature.TOOLS, Feature.STOP})
    got = with_overrides(base, {Feature.STOP: False, Feature.SEED: True})
    assert got == {Feature.TOOLS, Feature.SEED}
    assert with_overrides(base, None) == base


def test_map_schema_reaches_every_subschema_but_never_property_names():
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string", "title": "T"}},
        "$defs": {"D": {"type": "integer", "title": "D"}},
        "items": [{"title": "x"}],
        "anyOf": [{"title": "y"}],
        "additionalProperties": {"title": "z"},
        "title": "root",
    }
    got = keep_keywords(schema, frozenset({"type", "properties", "$defs", "items", "anyOf"}))
    assert got == {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "$defs": {"D": {"type": "integer"}},
        "items": [{}],
        "anyOf": [{}],
    }
    seen: list[dict] = []
    map_schema(schema, lambda s: seen.append(s) or s)
    assert len(seen) == 6 and seen[-1]["title"] == "root"  # innermost first, root last
