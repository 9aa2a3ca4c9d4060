"""Shared request-surface fixtures for the producer tests (issue 15): one line in both formats,
a real 1x1 PNG, a tool, a schema."""

from __future__ import annotations

import base64
import json
from typing import Any

# A real 1x1 PNG (the magic bytes are checked at input).
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PNG_URL = f"data:image/png;base64,{PNG_B64}"
JPEG_URL = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 16).decode()
GIF_URL = "data:image/gif;base64," + base64.b64encode(b"GIF89a" + b"\0" * 16).decode()
WEBP_URL = "data:image/webp;base64," + base64.b64encode(b"RIFF\0\0\0\0WEBPVP8 ").decode()

USER = {"role": "user", "content": "Extract the invoice fields as json."}
SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["total", "currency"],
    "additionalProperties": False,
}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL2 = {"type": "function", "function": {"name": "get_time"}}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}


def both_formats(custom_id: str, fields: dict[str, Any]) -> tuple[str, str]:
    """The same request as a native line and as an OpenAI Batch line (JSON text)."""
    native = {"custom_id": f"{custom_id}-n", **fields}
    openai = {
        "custom_id": f"{custom_id}-o",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": fields,
    }
    return json.dumps(native), json.dumps(openai)


BIG_SCHEMA_OK = {
    "type": "object",
    "$defs": {"a": {"type": "string"}},
    "properties": {"x": {"$ref": "#/$defs/a"}},
}


def rf_schema(schema: Any, **extra: Any) -> dict[str, Any]:
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": schema, **extra},
        }
    }


def msgs(*messages: Any) -> dict[str, Any]:
    return {"messages": list(messages)}


def image(url: Any, **extra: Any) -> dict[str, Any]:
    part = {"type": "image_url", "image_url": {"url": url, **extra}}
    return msgs({"role": "user", "content": [{"type": "text", "text": "hi"}, part]})
