"""`call_model`'s arguments, checked by exactly the rules a JSONL line is checked by.

Owns: `call_spec`, which writes the arguments as one native JSONL line and runs it through
`core.jsonl.parse_lines` (with the provider registry's capabilities), so the direct API and
`llmq submit` accept the same requests and reject the rest with the same reasons
(``temperature must be between 0 and 2, got 5``, ``missing text: prompt is empty``,
``no deployment of MODEL supports FEATURE``, ...), raised as `BadRequest` naming the
parameter. Nothing is replaced silently (``max_tokens=0`` is an error, not "the default").
Must not: call a provider, or keep rules of its own beyond turning Python values into the
line (pydantic models are dumped to their OpenAI form).

The seed API's one extension is kept: `prompt` together with `messages` appends the prompt as
the last user turn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from pydantic import BaseModel

from core.errors import BadRequest
from core.jsonl import InputError, parse_lines
from core.jsonl_common import type_name
from schemas.config import LLMConfig
from schemas.job import ChatMessage, JobSpec
from schemas.request import NamedToolChoice, ToolCall
from workers.providers import capabilities_of

CUSTOM_ID = "call_model"
LINE_PREFIX = "line 1: "
# The JSONL feature fields call_model takes as keyword arguments, besides the line's own.
FEATURE_ARGS = (
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stop",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "user",
)


def call_spec(
    config: LLMConfig,
    model_name: str,
    prompt: Any,
    messages: Sequence[Mapping[str, Any] | ChatMessage] | None,
    fields: Mapping[str, Any],
) -> JobSpec:
    """The request as a validated `JobSpec` (model resolved, system messages folded).

    Args:
        config: the configuration the call runs under (models, fallbacks, capabilities).
        model_name: a configured model name (checked by the caller).
        prompt, messages: the text; either or both (the prompt then ends the conversation).
        fields: the other line fields given (system, max_tokens, max_completion_tokens,
            temperature and the `FEATURE_ARGS`); None values mean "not given".

    Raises:
        BadRequest: the first reason the line is rejected, naming the parameter.
    """
    line: dict[str, Any] = {"custom_id": CUSTOM_ID, "model": model_name}
    if messages is not None:
        turns = _messages(messages)
        if prompt is not None:
            turns.append({"role": "user", "content": _prompt(prompt)})
        line["messages"] = turns
    elif prompt is not None:
        line["prompt"] = prompt
    line.update({k: _plain(v) for k, v in fields.items() if v is not None})
    text = "{" + ", ".join(f"{json.dumps(k)}: {_dumps(k, v)}" for k, v in line.items()) + "}"
    caps = partial(capabilities_of, config=config)
    try:
        specs = parse_lines([(1, text)], config, capabilities=caps)
    except InputError as exc:
        reason = exc.errors[0].removeprefix(LINE_PREFIX)
        raise BadRequest(f"call_model: {reason}") from None
    return specs[0]


def _messages(messages: Any) -> list[Any]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise BadRequest(f"call_model: messages must be a list, got {type_name(messages)}")
    out: list[Any] = []
    for m in messages:
        if isinstance(m, ChatMessage):
            out.append(m.openai())
        elif isinstance(m, Mapping):
            out.append({k: _plain(v) for k, v in m.items()})
        else:
            out.append(m)  # the line check names it: "messages[i] must be an object"
    return out


def _prompt(prompt: Any) -> str:
    """The prompt appended after `messages`: the rules of a native line's `prompt`."""
    if not isinstance(prompt, str):
        raise BadRequest(f"call_model: prompt must be a string, got {type_name(prompt)}")
    if not prompt.strip():
        raise BadRequest("call_model: missing text: prompt is empty")
    return prompt


def _plain(value: Any) -> Any:
    """Python values as JSON values: pydantic models in their OpenAI form, tuples as lists."""
    if isinstance(value, ChatMessage | NamedToolChoice | ToolCall):
        return value.openai()  # OpenAI's nested form, as a line holds it
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _dumps(name: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a set, an object, NaN or Infinity
        raise BadRequest(f"call_model: {name} is not a JSON value: {exc}") from None
