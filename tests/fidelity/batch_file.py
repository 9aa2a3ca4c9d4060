"""One OpenAI Batch file that uses the request surface of issue 15, and what each line asks for.

Every line carries a marker (``[L<n>]``) in its user text, so the simulator's request log can
be matched back to it. `LINES` are (body, expectation) pairs; `write_batch` writes any subset
as an OpenAI Batch input file (``{"custom_id", "method", "url", "body"}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A real 1x1 PNG (the input parser checks the magic bytes).
PNG_URL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
    "hgGAWjR9awAAAABJRU5ErkJggg=="
)
INVOICE = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["total", "currency"],
    "additionalProperties": False,
}
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather for a city", "parameters": CITY},
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "description": "Local time in a city", "parameters": CITY},
}
TOOL_PARAMS = {"get_weather": CITY, "get_time": CITY}
HISTORY_CALL = {
    "id": "call_h1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}


@dataclass(frozen=True)
class Expect:
    """What a line asks for, in the simulator's neutral summary terms."""

    json: bool = False
    schema: dict[str, Any] | None = None
    tools: tuple[str, ...] = ()
    tool_choice: str | None = None  # auto | required | none | a tool name; None = no tools
    forced: str | None = None  # a tool call must be present (its name, or "*" for any)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    images: int = 0
    history: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _user(n: int, text: str) -> dict[str, Any]:
    return {"role": "user", "content": f"[L{n}] {text}"}


def _schema_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


LINES: list[tuple[dict[str, Any], Expect]] = [
    (  # 1: json_object (the cookbook shape)
        {
            "messages": [_user(1, "Return the invoice as json.")],
            "response_format": {"type": "json_object"},
        },
        Expect(json=True),
    ),
    (  # 2: json_schema, strict
        {
            "messages": [_user(2, "Extract the invoice: 12.50 EUR.")],
            "response_format": _schema_format("invoice", INVOICE),
        },
        Expect(json=True, schema=INVOICE),
    ),
    (  # 3: a forced (named) tool
        {
            "messages": [_user(3, "What is the weather in Oslo?")],
            "tools": [WEATHER, TIME],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        Expect(tools=("get_weather", "get_time"), tool_choice="get_weather", forced="get_weather"),
    ),
    (  # 4: tool_choice required
        {
            "messages": [_user(4, "Use a tool for Bergen.")],
            "tools": [WEATHER, TIME],
            "tool_choice": "required",
        },
        Expect(tools=("get_weather", "get_time"), tool_choice="required", forced="*"),
    ),
    (  # 5: auto tools
        {
            "messages": [_user(5, "Call get_time for Tromso if you need it.")],
            "tools": [WEATHER, TIME],
            "tool_choice": "auto",
        },
        Expect(tools=("get_weather", "get_time"), tool_choice="auto"),
    ),
    (  # 6: tool-result history
        {
            "messages": [
                _user(6, "What is the weather in Oslo?"),
                {"role": "assistant", "content": None, "tool_calls": [HISTORY_CALL]},
                {
                    "role": "tool",
                    "tool_call_id": "call_h1",
                    "content": '{"temp_c": 4, "sky": "rain"}',
                },  # fmt: skip
            ],
            "tools": [WEATHER],
        },
        Expect(tools=("get_weather",), tool_choice="auto", history=True),
    ),
    (  # 7: stop
        {
            "messages": [_user(7, "Write two short paragraphs.")],
            "stop": ["END", "###"],
            "max_tokens": 60,
        },
        Expect(stop=("END", "###")),
    ),
    (  # 8: seed
        {"messages": [_user(8, "Pick a number.")], "seed": 42, "temperature": 0.7},
        Expect(seed=42),
    ),
    (  # 9: an image (inline data URL)
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "[L9] What is in this image?"},
                        {"type": "image_url", "image_url": {"url": PNG_URL}},
                    ],
                }
            ]
        },
        Expect(images=1),
    ),
    (  # 10: JSON output and tools in one request
        {
            "messages": [_user(10, "Extract the invoice as json; look up nothing.")],
            "tools": [WEATHER],
            "response_format": _schema_format("invoice", INVOICE),
        },
        Expect(json=True, schema=INVOICE, tools=("get_weather",), tool_choice="auto"),
    ),
]


def write_batch(path: Path, numbers: list[int], model: str) -> Path:
    """The OpenAI Batch input file holding `LINES[n - 1]` for each n (custom ids ``line-n``)."""
    rows = []
    for n in numbers:
        body = {"model": model, **LINES[n - 1][0]}
        rows.append(
            {
                "custom_id": f"line-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": body,
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
