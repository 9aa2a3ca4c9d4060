"""Mutation sweep over a line that uses the whole request surface (issue 15): whatever a field
is replaced by or stripped of, the parser answers with accepted specs or ``line N: reason``,
never a crash; and an accepted spec survives storage (its JSON dump) and `check_specs`
unchanged. Deterministic (fixed seeds)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from request_cases import CALL, PNG_URL, SCHEMA, TOOL, TOOL2

from core.jsonl import InputError, check_specs, parse_lines
from schemas.config import LLMConfig
from schemas.job import JobSpec

CFG = LLMConfig.model_validate({"models": [{"name": "m", "provider": "openai"}]})
BASE: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": [{"type": "text", "text": "s"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "result"},
    ],
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "s", "schema": SCHEMA, "strict": True},
    },
    "tools": [TOOL, TOOL2],
    "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    "parallel_tool_calls": True,
    "stop": ["END"],
    "top_p": 0.9,
    "seed": 1,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "user": "u1",
    "max_completion_tokens": 5,
}
DELETE = object()
VALUES: list[Any] = [
    *(None, True, False, 0, -1, 1.5, 2**70, "", "x", "call_1", "function", "auto", "get_time"),
    *([], [None], {}, {"type": "text"}, {"type": "function"}, {"a": {"b": [1]}}),
    *("data:image/png;base64,", "https://", "\x00", DELETE),
]


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if path:
        yield path
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from _paths(child, (*path, key))


def _mutate(node: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(node)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return out


@pytest.mark.parametrize("seed", range(4))
def test_mutated_lines_are_accepted_or_rejected_never_crash(seed: int) -> None:
    rng = random.Random(seed)
    accepted = 0
    for _ in range(60):
        request = BASE
        for _ in range(rng.randint(1, 3)):
            request = _mutate(request, rng.choice(list(_paths(request))), rng.choice(VALUES))
        native = {"custom_id": "n", **request}
        openai = {
            "custom_id": "o",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": request,
        }
        for line in (native, openai):
            try:
                [spec] = parse_lines([(1, json.dumps(line))], CFG)
            except InputError as exc:
                assert len(exc.errors) == 1 and exc.errors[0].startswith("line 1: ")
                continue
            accepted += 1
            assert JobSpec(**json.loads(spec.model_dump_json())) == spec
            assert check_specs([spec], CFG) == [spec]
    assert accepted  # some mutations (a dropped optional field) keep the line good
