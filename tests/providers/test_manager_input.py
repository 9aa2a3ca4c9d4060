"""`call_model` sends nothing a JSONL line would be rejected for (issue 20 item 10): the same
rules, the same reasons, naming the parameter, raised as `BadRequest` before any HTTP call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import BadRequest
from core.jsonl import InputError, parse_lines
from workers.providers import LLMProviderManager

from .test_manager import RecordingSleep, documented_config

USER = {"role": "user", "content": "Hi"}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# (case, call_model keyword arguments, a fragment the reason must contain)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("temperature too high", {"prompt": "hi", "temperature": 5}, "temperature must be between 0 and 2, got 5"),
    ("temperature negative", {"prompt": "hi", "temperature": -0.1}, "temperature must be between 0 and 2"),
    ("temperature not a number", {"prompt": "hi", "temperature": "hot"}, 'temperature must be a number, got "hot"'),
    ("empty prompt", {"prompt": ""}, "missing text: prompt is empty"),
    ("blank prompt", {"prompt": "  \n"}, "missing text: prompt is empty"),
    ("no text at all", {}, "missing text: give prompt or messages"),
    ("max_tokens zero", {"prompt": "hi", "max_tokens": 0}, "max_tokens must be between 1 and 1000000, got 0"),
    ("max_tokens negative", {"prompt": "hi", "max_tokens": -5}, "max_tokens must be between 1 and 1000000, got -5"),
    ("max_tokens float", {"prompt": "hi", "max_tokens": 10.5}, "max_tokens must be an integer, got 10.5"),
    (
        "assistant opens",
        {"messages": [{"role": "assistant", "content": "Hello!"}, USER]},
        "messages: the first non-system message must be a user message, not an assistant message",
    ),
    (
        "assistant opens after system",
        {"messages": [{"role": "system", "content": "Be brief"}, {"role": "assistant", "content": "Hi"}, USER]},
        "the first non-system message must be a user message",
    ),
    ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, 'messages[0].role "robot" is not supported'),
    ("only assistant", {"messages": [{"role": "assistant", "content": "x"}]}, "missing text: messages has no non-empty user message"),
    ("empty user turn", {"messages": [{"role": "user", "content": ""}]}, "missing text: messages has no non-empty user message"),
    ("top_p", {"prompt": "hi", "top_p": 2}, "top_p must be between 0 and 1, got 2"),
    ("seed float", {"prompt": "hi", "seed": 1.5}, "seed must be an integer, got 1.5"),
    ("penalty", {"prompt": "hi", "presence_penalty": 3}, "presence_penalty must be between -2 and 2, got 3"),
    ("stop empty", {"prompt": "hi", "stop": ""}, "stop must not be empty"),
    ("stop five", {"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, "stop may hold at most 4 strings, got 5"),
    ("tool_choice alone", {"prompt": "hi", "tool_choice": "required"}, "tool_choice: given without tools"),
    ("parallel alone", {"prompt": "hi", "parallel_tool_calls": False}, "parallel_tool_calls: given without tools"),
    ("format type", {"prompt": "hi", "response_format": {"type": "xml"}}, 'response_format.type must be one of text, json_object, json_schema, got "xml"'),
    (
        "bad schema",
        {"prompt": "hi", "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}},
        "response_format.json_schema.schema: not a valid JSON Schema",
    ),
    ("named tool undeclared", {"prompt": "hi", "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "'g' is not a declared tool"),
    (
        "tool result answers nothing",
        {"messages": [USER, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
        "messages[1].tool_call_id: 'call_9' is not the id of an earlier assistant tool call",
    ),
    (
        "image by http",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
        "must be an https:// URL or a data:image/... URL",
    ),
    ("user too long", {"prompt": "hi", "user": "u" * 300}, "user is longer than 256 characters"),
]  # fmt: skip


@pytest.fixture()
def manager(sim):
    m = LLMProviderManager(config=documented_config(sim), env={}, sleep=RecordingSleep())
    yield m
    m.close()


def jsonl_reason(manager: LLMProviderManager, kwargs: dict[str, Any]) -> str:
    """Why `llmq submit` rejects the same request written as a native line."""
    line = {"custom_id": "c", "model": "claude-2", **kwargs}
    with pytest.raises(InputError) as caught:
        parse_lines([(1, json.dumps(line))], manager.config)
    return caught.value.errors[0].removeprefix("line 1: ")


@pytest.mark.parametrize(("kwargs", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejected_like_a_jsonl_line_and_nothing_sent(manager, sim, kwargs, fragment):
    with pytest.raises(BadRequest) as caught:
        manager.call_model(model_name="claude-2", **kwargs)
    message = str(caught.value)
    assert fragment in message
    assert message == f"call_model: {jsonl_reason(manager, kwargs)}"  # the very same reason
    assert sim.log() == []  # no provider saw it (Anthropic would have answered 400)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"prompt": "hi", "temperature": float("nan")}, "temperature is not a JSON value"),
        ({"prompt": "hi", "stop": {"a"}}, "stop is not a JSON value"),
        ({"messages": "Hello"}, "messages must be a list, got a string"),
        ({"messages": [USER], "prompt": ""}, "missing text: prompt is empty"),
        ({"messages": [USER], "prompt": 3}, "prompt must be a string, got a number"),
    ],
)
def test_python_only_mistakes_name_the_parameter(manager, sim, kwargs, fragment):
    with pytest.raises(BadRequest, match=fragment):
        manager.call_model(**kwargs)
    assert sim.log() == []


def test_max_tokens_is_sent_as_given_never_replaced(manager, sim):
    manager.call_model(model_name="claude-2", prompt="hi", max_tokens=1)
    assert sim.requests(provider="anthropic")[-1]["request"]["body"]["max_tokens"] == 1
    manager.call_model(model_name="claude-2", prompt="hi")  # not given: the deployment's
    assert sim.requests(provider="anthropic")[-1]["request"]["body"]["max_tokens"] == 100000


def test_seed_forms_still_work(manager):
    assert manager.call_model(prompt="Hello")["response"].startswith("sim:")
    both = manager.call_model(
        model_name="claude-2",
        system="Be brief.",
        messages=[{"role": "system", "content": "Answer in French."}, USER, {"role": "assistant", "content": "Salut"}],
        prompt="Encore?",
        max_completion_tokens=20,
    )  # fmt: skip
    assert both["provider"] == "anthropic"
