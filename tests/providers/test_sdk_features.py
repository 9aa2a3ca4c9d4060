"""Dev-only cross-check of the simulator's structured output, tools and images against the
official SDKs: each SDK builds the request in its provider's native shape, the simulator must
accept it, and the reply must parse in the SDK's own types (tool calls, parsed JSON, refusal).
The strongest evidence that the simulator speaks the real formats. Run with `pytest -m sdk`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from .simhelp import TEST_KEY

pytestmark = pytest.mark.sdk

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}


class Person(BaseModel):
    name: str
    age: int
    emails: list[str]


def sdk(name: str) -> Any:
    return pytest.importorskip(name, reason=f"SDK {name!r} not installed (pip install -e .[dev])")


def _openai(sim: Any) -> Any:
    openai = sdk("openai")
    return openai, openai.OpenAI(api_key=TEST_KEY, base_url=sim.api_base("openai"), max_retries=0)


def test_openai_parse_structured_output(sim):
    _, api = _openai(sim)
    reply = api.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Extract: Ann, 31, ann@example.com"}],
        response_format=Person,
    )
    parsed = reply.choices[0].message.parsed
    assert isinstance(parsed, Person) and parsed.emails
    body = sim.requests(provider="openai", limit=1)[0]["request"]["body"]
    assert body["response_format"]["json_schema"]["strict"] is True


def test_openai_tools_image_and_history(sim):
    openai, api = _openai(sim)
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": WEATHER, "strict": True},
        }
    ]
    content = [
        {"type": "text", "text": "Weather where this photo was taken?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
    ]
    messages: list[Any] = [{"role": "user", "content": content}]
    reply = api.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        tools=tools,
        tool_choice="required",
        parallel_tool_calls=False,
        seed=7,
        stop=["\n\n"],
    )
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments)["unit"] in ("c", "f")
    messages += [
        reply.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    final = api.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "no magic word"}],
            response_format={"type": "json_object"},
        )


def test_openai_refusal(sim):
    _, api = _openai(sim)
    sim.configure("openai", rate_refusal=1.0)
    reply = api.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], response_format=Person
    )
    assert reply.choices[0].message.refusal and reply.choices[0].message.parsed is None


def test_anthropic_tools_output_config_and_image(sim):
    anthropic = sdk("anthropic")
    api = anthropic.Anthropic(api_key=TEST_KEY, base_url=sim.api_base("anthropic"), max_retries=0)
    tools = [{"name": "get_weather", "input_schema": WEATHER}]
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    user = {"role": "user", "content": [image, {"type": "text", "text": "Weather?"}]}
    reply = api.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=[user],
        tools=tools,
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    assert isinstance(reply, anthropic.types.Message) and reply.stop_reason == "tool_use"
    (use,) = [b for b in reply.content if b.type == "tool_use"]
    assert isinstance(use.input, dict) and use.input["unit"] in ("c", "f")
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "18C"}
    final = api.messages.create(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=[
            user,
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": [result]},
        ],
        tools=tools,
        output_config={"format": {"type": "json_schema", "schema": Person.model_json_schema()}},
    )
    Person.model_validate_json(final.content[0].text)
    with pytest.raises(anthropic.BadRequestError, match="Thinking may not be enabled"):
        api.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=2000,
            messages=[user],
            tools=tools,
            tool_choice={"type": "any"},
            thinking={"type": "enabled", "budget_tokens": 1024},
        )


def test_cohere_tools_and_json(sim):
    cohere = sdk("cohere")
    api = cohere.ClientV2(api_key=TEST_KEY, base_url=sim.api_base("cohere"))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    reply = api.chat(
        model="command-a-03-2025",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=tools,
        tool_choice="REQUIRED",
    )
    assert reply.finish_reason == "TOOL_CALL"
    call = reply.message.tool_calls[0]
    assert json.loads(call.function.arguments)["city"]
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "tool_plan": reply.message.tool_plan,
            "tool_calls": reply.message.tool_calls,
        },
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": [{"type": "document", "document": {"data": "18C"}}],
        },
    ]
    final = api.chat(model="command-a-03-2025", messages=messages, tools=tools)
    assert final.message.content[0].text
    structured = api.chat(
        model="command-a-03-2025",
        messages=[{"role": "user", "content": "Ann as JSON"}],
        response_format={"type": "json_object", "json_schema": Person.model_json_schema()},
        seed=3,
        p=0.5,
        k=10,
    )
    Person.model_validate_json(structured.message.content[0].text)
    with pytest.raises(cohere.core.api_error.ApiError):
        api.chat(
            model="command-a-03-2025",
            messages=[{"role": "user", "content": "x"}],
            tools=tools,
            response_format={"type": "json_object"},
        )


def _genai(sim: Any) -> tuple[Any, Any]:
    sdk("google.genai")
    from google import genai
    from google.genai import types

    http = types.HttpOptions(base_url=sim.api_base("google"), api_version="v1beta")
    return genai.Client(api_key=TEST_KEY, http_options=http), types


def test_google_response_schema_and_json_schema(sim):
    api, types = _genai(sim)
    reply = api.models.generate_content(
        model="gemini-2.5-flash",
        contents="Ann, 31",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Person
        ),
    )
    assert isinstance(reply.parsed, Person)
    reply = api.models.generate_content(
        model="gemini-2.5-flash",
        contents="Ann, 31",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema=Person.model_json_schema(),
            stop_sequences=["zzz"],
            seed=5,
            top_p=0.5,
        ),
    )
    Person.model_validate_json(reply.text)


def test_google_function_calling_and_history(sim):
    api, types = _genai(sim)
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
        ]
    )
    image = types.Part.from_bytes(data=__import__("base64").b64decode(PNG), mime_type="image/png")
    config = types.GenerateContentConfig(
        tools=[tool],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode="ANY", allowed_function_names=["get_weather"]
            )
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    reply = api.models.generate_content(
        model="gemini-2.5-flash", contents=[image, "Weather?"], config=config
    )
    (call,) = reply.function_calls
    assert call.name == "get_weather" and call.args["unit"] in ("c", "f")
    history = [
        types.Content(role="user", parts=[types.Part.from_text(text="Weather?")]),
        reply.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"t": "18C"})],
        ),
    ]
    auto = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    final = api.models.generate_content(model="gemini-2.5-flash", contents=history, config=auto)
    assert final.text and not final.function_calls


def test_google_gemini3_signature_round_trip(sim):
    api, types = _genai(sim)
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
        ]
    )
    config = types.GenerateContentConfig(
        tools=[tool], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
    )
    first = api.models.generate_content(
        model="gemini-3-pro-preview", contents="use get_weather", config=config
    )
    assert first.candidates[0].content.parts[0].thought_signature
    history = [
        types.Content(role="user", parts=[types.Part.from_text(text="use get_weather")]),
        first.candidates[0].content,
        types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="get_weather", response={"t": 1})],
        ),
    ]
    final = api.models.generate_content(
        model="gemini-3-pro-preview", contents=history, config=config
    )
    assert final.text


def test_google_sdk_sees_the_additional_properties_400(sim):
    api, types = _genai(sim)
    from google.genai import errors

    with pytest.raises(errors.ClientError, match="(?i)additional_?properties"):
        api.models.generate_content(
            model="gemini-2.5-flash",
            contents="x",
            config={"response_mime_type": "application/json", "response_schema": WEATHER},
        )
