"""What the simulated model answers: text, JSON, or tool calls (shared by every dialect).

This module owns the provider-neutral request features (``Features``: tools, tool choice,
JSON mode and schema, stop strings, images) that each dialect fills in from its own wire
format, and the deterministic rules that turn them into a reply (``Answer``):

* **Tool choice.** ``none`` (or no tools) -> text. ``named`` -> exactly that tool. ``required``
  (OpenAI ``required``, Anthropic ``any``, Gemini ``ANY``, Cohere ``REQUIRED``) -> the tools
  whose name the last user message mentions (case-insensitive substring), else the first
  (allowed) tool. ``auto`` -> the mentioned tools, but text when the conversation ends with a
  tool result (the model answers it). Without parallel calls at most one call is made.
  Gemini ``allowedFunctionNames`` narrows the candidates.
* **Arguments** come from the tool's parameter schema (``schemagen.instance``), seeded by
  model + last user text + tool name; **JSON replies** from the response schema (or a small
  object for schema-less JSON mode), seeded by model + last user text.
* **Stop.** The earliest occurrence of any stop string cuts a text or JSON reply there
  (finish ``stop_sequence``); tool calls are not cut.
* **Faults** (``fault`` from the engine): ``invalid_json`` makes a JSON reply non-JSON text or
  schema-violating JSON (picked by the request hash), tool arguments schema-violating;
  ``refusal`` answers a refusal instead.

Must not: know any wire format (dialects translate) or hold state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from simulator.schemagen import digest, instance, violate

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
IMAGE_TOKENS_MAX = 85


def image_tokens(reference: str) -> int:
    """Prompt tokens for one image: ``min(85, ceil(len(reference) / 4))`` (URL or base64)."""
    return min(IMAGE_TOKENS_MAX, (len(reference.encode("utf-8")) + 3) // 4)


@dataclass(slots=True)
class Tool:
    """A declared tool: its name and JSON-Schema-ish parameters (may be None)."""

    name: str
    parameters: dict[str, Any] | None = None


@dataclass(slots=True)
class Features:
    """The request's non-text features, in neutral form."""

    tools: list[Tool] = field(default_factory=list)
    choice: str = "auto"  # auto | none | required | named
    named: str | None = None
    allowed: list[str] | None = None
    parallel: bool = True
    json: bool = False
    schema: dict[str, Any] | None = None
    enum_text: bool = False  # Gemini text/x.enum: the bare enum value, not JSON
    stop: list[str] = field(default_factory=list)
    images: int = 0
    image_tokens: int = 0
    after_tool: bool = False
    history_calls: int = 0
    tool_results: int = 0
    seed: int | None = None

    def summary(self) -> dict[str, Any]:
        """What the request asked for, in neutral terms (kept in the request log)."""
        return {
            "json": self.json,
            "schema": self.schema,
            "tools": [t.name for t in self.tools],
            "tool_choice": self.named if self.choice == "named" else self.choice,
            "allowed_tools": self.allowed,
            "parallel_tool_calls": self.parallel,
            "stop": self.stop,
            "images": self.images,
            "history_tool_calls": self.history_calls,
            "tool_results": self.tool_results,
            "seed": self.seed,
        }

    def add_image(self, reference: str) -> None:
        """Count one image given by URL or base64 data."""
        self.images += 1
        self.image_tokens += image_tokens(reference)


@dataclass(slots=True)
class ToolCall:
    """One tool call in a reply; ``arguments`` is the decoded object."""

    id: str
    name: str
    arguments: Any

    @property
    def arguments_json(self) -> str:
        """The arguments as a JSON string (OpenAI/Cohere wire form)."""
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


@dataclass(slots=True)
class Answer:
    """What the model says before token accounting: text and/or tool calls."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    is_json: bool = False
    refusal: bool = False
    stop_hit: str | None = None


def choose_tools(features: Features, last_user_text: str) -> list[Tool]:
    """The tools to call (see the module docstring), possibly none."""
    if not features.tools or features.choice == "none":
        return []
    by_name = {t.name: t for t in features.tools}
    if features.choice == "named":
        tool = by_name.get(features.named or "")
        return [tool] if tool else []
    candidates = features.tools
    if features.allowed:
        candidates = [t for t in candidates if t.name in features.allowed] or candidates
    lowered = last_user_text.lower()
    mentioned = [t for t in candidates if t.name.lower() in lowered]
    if features.choice == "required":
        picked = mentioned or candidates[:1]
    elif features.after_tool:
        picked = []
    else:
        picked = mentioned
    return picked if features.parallel else picked[:1]


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, str | None]:
    """``text`` up to the earliest stop string, and that string (or None)."""
    best: tuple[int, str] | None = None
    for stop in stops:
        if not stop:
            continue
        at = text.find(stop)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def answer(
    model: str, last_user_text: str, features: Features, plain_text: str, fault: str | None
) -> Answer:
    """The deterministic answer; ``plain_text`` is the reply when neither tools nor JSON apply."""
    if fault == "refusal":
        return Answer(REFUSAL_TEXT, refusal=True)
    seed = model + "\x1f" + last_user_text
    calls: list[ToolCall] = []
    for tool in choose_tools(features, last_user_text):
        args = instance(tool.parameters, seed + "\x1f" + tool.name)
        if not tool.parameters:
            args = {}
        if fault == "invalid_json":
            args = violate(tool.parameters, args, seed) if tool.parameters else ["not-an-object"]
        call_id = digest(seed, tool.name, str(len(calls)))[:24]
        calls.append(ToolCall(call_id, tool.name, args))
    if calls:
        return Answer("", tool_calls=calls)
    if features.json:
        value = instance(features.schema, seed)
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if features.enum_text and isinstance(value, str):
            text = value
        if fault == "invalid_json":
            text = _invalid(features.schema, value, seed, text)
        cut, hit = cut_at_stop(text, features.stop)
        return Answer(cut, is_json=True, stop_hit=hit)
    cut, hit = cut_at_stop(plain_text, features.stop)
    return Answer(cut, stop_hit=hit)


def _invalid(schema: dict[str, Any] | None, value: Any, seed: str, text: str) -> str:
    """Non-JSON text, or JSON that violates ``schema`` (chosen by the request hash)."""
    if schema and int(digest(seed, "invalid")[:2], 16) % 2 == 1:
        return json.dumps(violate(schema, value, seed), separators=(",", ":"))
    return "Sure! Here is the JSON you asked for: " + text[: max(1, len(text) // 2)]
