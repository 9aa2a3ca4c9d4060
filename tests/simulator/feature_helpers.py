"""Per-dialect request builders and reply readers for structured output, tools and images.

Written from shared/reference/request-fidelity.md, independently of the simulator's code: each
builder takes one neutral description and returns ``(path, headers, body)`` in the provider's
native shape; ``calls``/``text`` read a 200 reply back.
"""

from __future__ import annotations

import json
from typing import Any

from sim_helpers import _auth

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
OPENAI_LIKE = ("openai", "huggingface", "local")
ALL = (*OPENAI_LIKE, "anthropic", "google", "cohere", "ollama")

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "emails": {"type": "array", "items": {"type": "string", "format": "email"}},
    },
    "required": ["name", "age", "emails"],
    "additionalProperties": False,
}


def path_of(provider: str, model: str) -> str:
    """The chat path of ``provider``."""
    if provider in OPENAI_LIKE:
        return f"/{provider}/v1/chat/completions"
    return {
        "anthropic": "/anthropic/v1/messages",
        "google": f"/google/v1beta/models/{model}:generateContent",
        "cohere": "/cohere/v2/chat",
        "ollama": "/ollama/api/chat",
    }[provider]


def base_body(provider: str, model: str, user: str, image: bool = False) -> dict[str, Any]:
    """A one-message body (optionally with a PNG image)."""
    if provider == "google":
        parts: list[dict[str, Any]] = [{"text": user}]
        if image:
            parts.append({"inlineData": {"mimeType": "image/png", "data": PNG_B64}})
        return {"contents": [{"role": "user", "parts": parts}]}
    if provider == "anthropic":
        content: Any = user
        if image:
            src = {"type": "base64", "media_type": "image/png", "data": PNG_B64}
            content = [{"type": "text", "text": user}, {"type": "image", "source": src}]
        return {
            "model": model,
            "max_tokens": 512,
            "messages": [{"role": "user", "content": content}],
        }
    if provider == "ollama":
        msg: dict[str, Any] = {"role": "user", "content": user}
        if image:
            msg["images"] = [PNG_B64]
        return {"model": model, "stream": False, "messages": [msg]}
    content = user
    if image:
        url = {"url": "data:image/png;base64," + PNG_B64}
        content = [{"type": "text", "text": user}, {"type": "image_url", "image_url": url}]
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def with_schema(provider: str, body: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """Ask for JSON (fitting ``schema`` when given) in the provider's native way."""
    if provider in OPENAI_LIKE:
        if schema is None:
            body["response_format"] = {"type": "json_object"}
        else:
            spec = {"name": "out", "schema": schema, "strict": True}
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif provider == "anthropic":
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema or {}}}
    elif provider == "google":
        config = body.setdefault("generationConfig", {})
        config["responseMimeType"] = "application/json"
        if schema is not None:
            config["responseJsonSchema"] = schema
    elif provider == "cohere":
        body["response_format"] = {"type": "json_object"}
        if schema is not None:
            body["response_format"]["json_schema"] = schema
    else:
        body["format"] = schema if schema is not None else "json"


def with_tools(provider: str, body: dict[str, Any], choice: str, parallel: bool = True) -> None:
    """Declare get_weather and get_time; ``choice`` is auto/none/required/get_weather."""
    tools = {"get_weather": WEATHER_PARAMS, "get_time": {"type": "object", "properties": {}}}
    if provider == "anthropic":
        body["tools"] = [{"name": n, "input_schema": p} for n, p in tools.items()]
        kind = {"required": "any", "get_weather": "tool"}.get(choice, choice)
        body["tool_choice"] = {"type": kind, "disable_parallel_tool_use": not parallel}
        if kind == "tool":
            body["tool_choice"]["name"] = choice
    elif provider == "google":
        decls = [{"name": n, "parametersJsonSchema": p} for n, p in tools.items()]
        body["tools"] = [{"functionDeclarations": decls}]
        mode = {"auto": "AUTO", "none": "NONE"}.get(choice, "ANY")
        config: dict[str, Any] = {"mode": mode}
        if choice == "get_weather":
            config["allowedFunctionNames"] = ["get_weather"]
        body["toolConfig"] = {"functionCallingConfig": config}
    else:
        body["tools"] = [
            {"type": "function", "function": {"name": n, "parameters": p}} for n, p in tools.items()
        ]
        if provider == "cohere":
            if choice in ("required", "none"):
                body["tool_choice"] = choice.upper()
        elif provider in OPENAI_LIKE:
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice}}
                if choice == "get_weather"
                else choice
            )
            body["parallel_tool_calls"] = parallel


def build(provider: str, model: str, user: str, **features: Any):
    """``(path, headers, body)``; features: schema/json, tools=choice, parallel, image."""
    body = base_body(provider, model, user, image=features.get("image", False))
    if "schema" in features:
        with_schema(provider, body, features["schema"])
    if "tools" in features:
        with_tools(provider, body, features["tools"], features.get("parallel", True))
    return path_of(provider, model), _auth(provider, "sk-test"), body


def calls(provider: str, data: dict[str, Any]) -> list[tuple[str, Any]]:
    """``[(name, arguments as an object)]`` from a reply."""
    if provider in (*OPENAI_LIKE, "cohere"):
        msg = data["choices"][0]["message"] if provider != "cohere" else data["message"]
        out = []
        for call in msg.get("tool_calls") or []:
            assert isinstance(call["function"]["arguments"], str)
            assert call["id"] and call["type"] == "function"
            out.append((call["function"]["name"], json.loads(call["function"]["arguments"])))
        return out
    if provider == "anthropic":
        return [(b["name"], b["input"]) for b in data["content"] if b["type"] == "tool_use"]
    if provider == "google":
        parts = data["candidates"][0]["content"]["parts"]
        return [
            (p["functionCall"]["name"], p["functionCall"]["args"])
            for p in parts
            if "functionCall" in p
        ]
    return [
        (c["function"]["name"], c["function"]["arguments"])
        for c in data["message"].get("tool_calls") or []
    ]


def text(provider: str, data: dict[str, Any]) -> str:
    """The reply text."""
    if provider in OPENAI_LIKE:
        return data["choices"][0]["message"]["content"] or ""
    if provider == "anthropic":
        return "".join(b["text"] for b in data["content"] if b["type"] == "text")
    if provider == "google":
        return "".join(p.get("text", "") for p in data["candidates"][0]["content"]["parts"])
    if provider == "cohere":
        return "".join(c["text"] for c in data["message"].get("content") or [])
    return data["message"]["content"]


def finish(provider: str, data: dict[str, Any]) -> str:
    """The finish reason."""
    if provider in OPENAI_LIKE:
        return data["choices"][0]["finish_reason"]
    if provider == "anthropic":
        return data["stop_reason"]
    if provider == "google":
        return data["candidates"][0]["finishReason"]
    if provider == "cohere":
        return data["finish_reason"]
    return data["done_reason"]
