"""What each real API rejects, the simulator rejects: status, envelope and message."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from feature_helpers import PERSON, build
from sim_helpers import error_message

from simulator.server import RunningSimulator


def reject(
    client: httpx.Client,
    provider: str,
    body: dict[str, Any],
    path: str,
    headers: dict[str, str],
    needle: str,
) -> str:
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 400, (provider, response.text)
    message = error_message(provider, response.json())
    assert needle in message, message
    return message


def case(provider: str, user: str = "hi", model: str = "model-x", **features: Any):
    path, headers, body = build(provider, model, user, **features)
    return provider, body, path, headers


# --- OpenAI -------------------------------------------------------------------------------


def test_openai_json_object_needs_the_word_json(client: httpx.Client) -> None:
    provider, body, path, headers = case("openai", "Give me an object.", schema=None)
    reject(client, provider, body, path, headers, "must contain the word 'json'")
    err = client.post(path, headers=headers, json=body).json()["error"]
    assert err["param"] == "messages" and err["type"] == "invalid_request_error"
    body["messages"][0]["content"] = "Give me a JSON object."
    assert client.post(path, headers=headers, json=body).status_code == 200


@pytest.mark.parametrize("provider", ["huggingface", "local"])
def test_compatible_servers_do_not_need_the_word(client: httpx.Client, provider: str) -> None:
    provider, body, path, headers = case(provider, "Give me an object.", schema=None)
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_openai_at_most_four_stop_strings(client: httpx.Client) -> None:
    provider, body, path, headers = case("openai")
    body["stop"] = ["a", "b", "c", "d", "e"]
    reject(client, provider, body, path, headers, "maximum length 4")
    body["stop"] = "a"
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_openai_strict_schema_rules(client: httpx.Client) -> None:
    loose = {**PERSON, "additionalProperties": True}
    provider, body, path, headers = case("openai", schema=loose)
    reject(client, provider, body, path, headers, "'additionalProperties' is required")
    partial = {**PERSON, "required": ["name"]}
    provider, body, path, headers = case("openai", schema=partial)
    reject(client, provider, body, path, headers, "Missing 'age'")
    body["response_format"]["json_schema"]["strict"] = False
    assert client.post(path, headers=headers, json=body).status_code == 200
    provider, body, path, headers = case("openai", schema=PERSON)
    body["response_format"]["json_schema"]["name"] = "bad name!"
    reject(client, provider, body, path, headers, "json_schema.name")


def test_openai_tool_rules(client: httpx.Client) -> None:
    provider, body, path, headers = case("openai", tools="auto")
    body["tool_choice"] = {"type": "function", "function": {"name": "nope"}}
    reject(client, provider, body, path, headers, "not found in 'tools'")
    provider, body, path, headers = case("openai")
    body["tool_choice"] = "required"
    reject(client, provider, body, path, headers, "only allowed when 'tools' are specified")
    provider, body, path, headers = case("openai", tools="auto")
    body["messages"].append({"role": "tool", "tool_call_id": "call_x", "content": "1"})
    reject(client, provider, body, path, headers, "must be a response to a preceeding message")
    provider, body, path, headers = case("openai", tools="auto")
    call = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": {}}}
    body["messages"].append({"role": "assistant", "tool_calls": [call]})
    reject(client, provider, body, path, headers, "expected a string, but got an object")


def test_openai_bad_image_url(client: httpx.Client) -> None:
    provider, body, path, headers = case("openai")
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
    body["messages"][0]["content"] = [part]
    reject(client, provider, body, path, headers, "not valid base64")
    part["image_url"]["url"] = "ftp://x/y.png"
    reject(client, provider, body, path, headers, "invalid format")


# --- Anthropic ----------------------------------------------------------------------------


def test_anthropic_unknown_top_level_field(client: httpx.Client) -> None:
    provider, body, path, headers = case("anthropic")
    body["response_format"] = {"type": "json_object"}
    reject(client, provider, body, path, headers, "response_format: Extra inputs are not permitted")


def test_anthropic_beta_output_format_needs_the_header(client: httpx.Client) -> None:
    provider, body, path, headers = case("anthropic")
    body["output_format"] = {"type": "json_schema", "schema": PERSON}
    reject(client, provider, body, path, headers, "output_format: Extra inputs")
    headers = {**headers, "anthropic-beta": "structured-outputs-2025-11-13"}
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert set(json.loads(response.json()["content"][0]["text"])) == set(PERSON["properties"])


@pytest.mark.parametrize(
    ("model", "rejected"),
    [
        ("claude-sonnet-4-5", True),
        ("claude-haiku-4-5-20251001", True),
        ("claude-opus-4-1", True),
        ("claude-sonnet-4-6", True),
        ("claude-3-5-haiku-latest", False),
        ("claude-sonnet-4-0", False),
    ],
)
def test_anthropic_temperature_with_top_p(client: httpx.Client, model: str, rejected: bool) -> None:
    provider, body, path, headers = case("anthropic", model=model)
    body.update(temperature=0.5, top_p=0.9)
    if rejected:
        reject(client, provider, body, path, headers, "cannot both be specified")
    else:
        assert client.post(path, headers=headers, json=body).status_code == 200


@pytest.mark.parametrize("forced", ["required", "get_weather"])
def test_anthropic_thinking_with_forced_tool(client: httpx.Client, forced: str) -> None:
    provider, body, path, headers = case("anthropic", tools=forced)
    body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
    reject(client, provider, body, path, headers, "Thinking may not be enabled when tool_choice")
    body["tool_choice"] = {"type": "auto"}
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_anthropic_tool_history_rules(client: httpx.Client) -> None:
    provider, body, path, headers = case("anthropic")
    use = {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}
    body["messages"] += [
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
    ]
    reject(client, provider, body, path, headers, "must define tools")
    provider, body2, path, headers = case("anthropic", tools="auto")
    body2["messages"] = body["messages"][:2] + [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}
    ]
    reject(client, provider, body2, path, headers, "unexpected `tool_use_id`")


def test_anthropic_blank_stop_sequence_and_bad_image(client: httpx.Client) -> None:
    provider, body, path, headers = case("anthropic")
    body["stop_sequences"] = ["  "]
    reject(client, provider, body, path, headers, "non-whitespace")
    provider, body, path, headers = case("anthropic")
    source = {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}
    body["messages"][0]["content"] = [{"type": "image", "source": source}]
    reject(client, provider, body, path, headers, "media_type")


# --- Gemini -------------------------------------------------------------------------------


def test_gemini_response_schema_with_additional_properties(client: httpx.Client) -> None:
    provider, body, path, headers = case("google")
    body["generationConfig"] = {"responseMimeType": "application/json", "responseSchema": PERSON}
    message = reject(client, provider, body, path, headers, 'Unknown name "additionalProperties"')
    assert "at 'generation_config.response_schema'" in message
    err = client.post(path, headers=headers, json=body).json()["error"]
    assert err["status"] == "INVALID_ARGUMENT" and err["code"] == 400


def test_gemini_nested_additional_properties_names_its_path(client: httpx.Client) -> None:
    provider, body, path, headers = case("google")
    inner = {
        "type": "object",
        "properties": {"x": {"type": "string"}},
        "additionalProperties": False,
    }
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": inner}}
    body["generationConfig"] = {"responseMimeType": "application/json", "responseSchema": schema}
    reject(client, provider, body, path, headers, "response_schema.properties[1].value'")


def test_gemini_json_schema_allows_additional_properties(client: httpx.Client) -> None:
    provider, body, path, headers = case("google", schema=PERSON)  # responseJsonSchema
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_gemini_function_parameters_with_additional_properties(client: httpx.Client) -> None:
    provider, body, path, headers = case("google")
    decl = {"name": "f", "parameters": {**PERSON}}
    body["tools"] = [{"functionDeclarations": [decl]}]
    reject(
        client, provider, body, path, headers, "at 'tools[0].function_declarations[0].parameters'"
    )
    decl["parametersJsonSchema"] = decl.pop("parameters")
    assert client.post(path, headers=headers, json=body).status_code == 200


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (
            {
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT"},
                "responseJsonSchema": {"type": "object"},
            },
            "cannot both be set",
        ),
        ({"responseSchema": {"type": "STRING"}}, "response_mime_type must be"),
        (
            {
                "responseMimeType": "application/json",
                "responseSchema": {"type": ["string", "null"]},
            },
            "response_schema.type'",
        ),
        (
            {
                "responseMimeType": "application/json",
                "responseSchema": {"$schema": "x", "type": "OBJECT"},
            },
            'Unknown name "$schema"',
        ),
        ({"stopSequences": ["a", "b", "c", "d", "e", "f"]}, "at most 5"),
        (
            {"responseFormat": {"type": "json"}},
            "Unknown name \"responseFormat\" at 'generation_config'",
        ),
    ],
)
def test_gemini_config_rejections(client: httpx.Client, config: dict, needle: str) -> None:
    provider, body, path, headers = case("google")
    body["generationConfig"] = config
    reject(client, provider, body, path, headers, needle)


def test_gemini_unknown_top_level_and_tool_config(client: httpx.Client) -> None:
    provider, body, path, headers = case("google")
    body["response_format"] = {"type": "json_object"}
    reject(
        client, provider, body, path, headers, 'Unknown name "response_format": Cannot find field.'
    )
    provider, body, path, headers = case("google", tools="auto")
    body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] = ["get_time"]
    reject(client, provider, body, path, headers, "only allowed when function calling mode is ANY")


def test_gemini_function_response_needs_a_name(client: httpx.Client) -> None:
    provider, body, path, headers = case("google", tools="auto")
    body["contents"] += [
        {"role": "model", "parts": [{"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"response": {"t": 1}}}]},
    ]
    reject(client, provider, body, path, headers, "function_response.name")


# --- Cohere -------------------------------------------------------------------------------


def test_cohere_response_format_with_tools(client: httpx.Client) -> None:
    provider, body, path, headers = case("cohere", schema=PERSON, tools="auto")
    message = reject(client, provider, body, path, headers, "not supported together with tools")
    assert message.startswith("invalid request: ")


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"stop_sequences": list("abcdef")}, "maximum length 5"),
        ({"p": 1.0}, "'p'"),
        ({"k": 501}, "'k'"),
        ({"frequency_penalty": 1.5}, "frequency_penalty"),
        ({"response_format": {"type": "json_schema"}}, "response_format.type"),
        ({"response_format": {"type": "json_object", "schema": {}}}, "unknown field"),
    ],
)
def test_cohere_parameter_rejections(client: httpx.Client, fields: dict, needle: str) -> None:
    provider, body, path, headers = case("cohere")
    body.update(fields)
    reject(client, provider, body, path, headers, needle)


def test_cohere_has_no_named_or_auto_tool_choice(client: httpx.Client) -> None:
    provider, body, path, headers = case("cohere", tools="auto")
    body["tool_choice"] = "AUTO"
    reject(client, provider, body, path, headers, "'REQUIRED' or 'NONE'")


# --- Ollama -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["response_format", "tool_choice", "stop", "seed", "top_p"])
def test_ollama_rejects_openai_only_fields(client: httpx.Client, field: str) -> None:
    provider, body, path, headers = case("ollama")
    body[field] = "x"
    reject(client, provider, body, path, headers, f"unsupported field '{field}'")


def test_ollama_images_must_be_raw_base64(client: httpx.Client) -> None:
    provider, body, path, headers = case("ollama", image=True)
    body["messages"][0]["images"] = ["data:image/png;base64,AAAA"]
    reject(client, provider, body, path, headers, "illegal base64 data")


def test_ollama_tool_call_arguments_must_be_objects(client: httpx.Client) -> None:
    provider, body, path, headers = case("ollama", tools="auto")
    call = {"function": {"name": "get_time", "arguments": "{}"}}
    body["messages"].append({"role": "assistant", "content": "", "tool_calls": [call]})
    reject(client, provider, body, path, headers, "cannot unmarshal string")


def test_rejections_are_logged_with_their_bodies(
    sim: RunningSimulator, client: httpx.Client
) -> None:
    provider, body, path, headers = case("openai")
    body["stop"] = list("abcde")
    client.post(path, headers=headers, json=body)
    entry = sim.requests(kind="invalid")[-1]
    assert entry["status"] == 400 and entry["request"]["body"]["stop"] == list("abcde")


def test_openai_unknown_parameter(client: httpx.Client) -> None:
    provider, body, path, headers = case("openai")
    body["top_k"] = 3
    reject(client, provider, body, path, headers, "Unrecognized request argument supplied: top_k")
    provider, body, path, headers = case("local")
    body["top_k"] = 3  # vLLM takes top_k
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_cohere_tool_needs_parameters(client: httpx.Client) -> None:
    provider, body, path, headers = case("cohere")
    body["tools"] = [{"type": "function", "function": {"name": "f"}}]
    reject(client, provider, body, path, headers, "tools[0].function.parameters is required")


def _gemini3_history(client: httpx.Client, signature: str | None) -> httpx.Response:
    provider, body, path, headers = case("google", "use get_weather", "gemini-3-pro", tools="auto")
    first = client.post(path, headers=headers, json=body).json()
    model_turn = first["candidates"][0]["content"]
    assert model_turn["parts"][0]["thoughtSignature"]
    if signature is None:
        del model_turn["parts"][0]["thoughtSignature"]
    elif signature != "keep":
        model_turn["parts"][0]["thoughtSignature"] = signature
    answer = {"functionResponse": {"name": "get_weather", "response": {"t": "18C"}}}
    body["contents"] += [model_turn, {"role": "user", "parts": [answer]}]
    return client.post(path, headers=headers, json=body)


@pytest.mark.parametrize(
    ("signature", "status"),
    [("keep", 200), ("skip_thought_signature_validator", 200), (None, 400)],
)
def test_gemini3_wants_its_thought_signature_back(
    client: httpx.Client, signature: str | None, status: int
) -> None:
    response = _gemini3_history(client, signature)
    assert response.status_code == status, response.text
    if status == 400:
        assert "missing a thought_signature" in error_message("google", response.json())
