"""The schema-instance generator: every instance validates (jsonschema), same seed same value."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from simulator.schemagen import instance, violate
from simulator.tooling import Features, Tool, choose_tools, cut_at_stop

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 3, "maxLength": 20},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "email": {"type": "string", "format": "email"},
        "nickname": {"type": ["string", "null"]},
    },
    "required": ["name", "age", "email", "nickname"],
    "additionalProperties": False,
}

SCHEMAS = {
    "person": PERSON,
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f}
            for f in ("date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6")
        },
        "required": ["date", "uuid"],
    },
    "arrays": {
        "type": "object",
        "properties": {
            "few": {"type": "array", "items": {"type": "integer"}, "minItems": 3, "maxItems": 5},
            "one": {"type": "array", "items": {"type": "string"}, "maxItems": 1},
            "none": {"type": "array", "items": {"type": "number"}, "maxItems": 0},
            "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]},
        },
    },
    "enum_const": {
        "type": "object",
        "properties": {
            "colour": {"enum": ["red", "green", "blue"]},
            "kind": {"const": "fixed"},
            "level": {"type": "string", "enum": ["low", "high"]},
        },
    },
    "numbers": {
        "type": "object",
        "properties": {
            "x": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "n": {"type": "integer", "minimum": 5, "multipleOf": 5},
            "m": {"type": "integer", "maximum": -3},
            "f": {"type": "number", "minimum": 1.5, "maximum": 1.5},
        },
    },
    "refs": {
        "$defs": {
            "address": {
                "type": "object",
                "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["street", "zip"],
                "additionalProperties": False,
            },
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                },
                "required": ["value"],
            },
        },
        "type": "object",
        "properties": {
            "home": {"$ref": "#/$defs/address"},
            "list": {"$ref": "#/$defs/node"},
        },
        "required": ["home", "list"],
    },
    "unions": {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 2}]},
            "b": {"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]},
            "c": {"allOf": [{"type": "object", "properties": {"p": {"type": "string"}}}]},
        },
    },
    "array_root": {"type": "array", "items": PERSON, "minItems": 1},
    "scalar_root": {"type": "string", "format": "date"},
    "gemini_openapi": {
        "type": "OBJECT",
        "properties": {
            "title": {"type": "STRING"},
            "score": {"type": "NUMBER", "nullable": True, "minimum": 0, "maximum": 10},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 2},
        },
        "required": ["title", "score"],
        "propertyOrdering": ["score", "title", "tags"],
    },
}


def _lower_types(schema):
    if isinstance(schema, dict):
        return {
            k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(x) for x in schema]
    return schema


@pytest.mark.parametrize("name", SCHEMAS)
def test_instance_validates_and_is_deterministic(name: str) -> None:
    schema = SCHEMAS[name]
    validator = Draft202012Validator(_lower_types(schema), format_checker=FormatChecker())
    for seed in ("a", "b", "gpt-4o\x1fextract the person"):
        value = instance(schema, seed)
        errors = [e.message for e in validator.iter_errors(value)]
        assert errors == [], (name, value, errors)
        assert instance(schema, seed) == value


def test_key_order_follows_the_schema_and_property_ordering() -> None:
    assert list(instance(PERSON, "s")) == ["name", "age", "email", "nickname"]
    assert list(instance(SCHEMAS["gemini_openapi"], "s")) == ["score", "title", "tags"]


def test_seed_changes_values() -> None:
    values = {instance({"type": "string"}, f"seed{i}") for i in range(20)}
    assert len(values) == 20


def test_schema_less_json_is_an_object() -> None:
    assert isinstance(instance(None, "x"), dict) and isinstance(instance({}, "x"), dict)


@pytest.mark.parametrize("name", ["person", "refs", "array_root"])
def test_violate_breaks_the_schema(name: str) -> None:
    schema = SCHEMAS[name]
    validator = Draft202012Validator(schema)
    broken = violate(schema, instance(schema, "v"), "v")
    assert not validator.is_valid(broken)


WEATHER = Tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}})
TIME = Tool("get_time", {"type": "object", "properties": {}})


@pytest.mark.parametrize(
    ("choice", "named", "allowed", "parallel", "after_tool", "text", "expected"),
    [
        ("auto", None, None, True, False, "what is the weather?", []),
        ("auto", None, None, True, False, "call GET_WEATHER please", ["get_weather"]),
        ("auto", None, None, True, False, "get_time and get_weather", ["get_weather", "get_time"]),
        ("auto", None, None, False, False, "get_time and get_weather", ["get_weather"]),
        ("auto", None, None, True, True, "call get_weather", []),
        ("none", None, None, True, False, "call get_weather", []),
        ("required", None, None, True, False, "hello", ["get_weather"]),
        ("required", None, None, True, False, "use get_time", ["get_time"]),
        ("required", None, None, True, True, "use get_time", ["get_time"]),
        ("required", None, ["get_time"], True, False, "hello", ["get_time"]),
        ("named", "get_time", None, True, False, "call get_weather", ["get_time"]),
    ],
)
def test_tool_choice_rule(choice, named, allowed, parallel, after_tool, text, expected) -> None:
    features = Features(
        tools=[WEATHER, TIME],
        choice=choice,
        named=named,
        allowed=allowed,
        parallel=parallel,
        after_tool=after_tool,
    )
    assert [t.name for t in choose_tools(features, text)] == expected


def test_no_tools_means_text() -> None:
    assert choose_tools(Features(choice="required"), "anything") == []


def test_cut_at_stop_takes_the_earliest() -> None:
    assert cut_at_stop("alpha beta gamma", ["gamma", "beta"]) == ("alpha ", "beta")
    assert cut_at_stop("alpha", ["zeta", ""]) == ("alpha", None)
