"""Structured output, tools, tool history, stop and images, over HTTP, in every dialect."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from feature_helpers import (
    ALL,
    OPENAI_LIKE,
    PERSON,
    PNG_B64,
    WEATHER_PARAMS,
    build,
    calls,
    finish,
    text,
)
from jsonschema import Draft202012Validator, FormatChecker
from sim_helpers import _auth

from simulator.server import RunningSimulator

MODEL = "model-x"
TOOL_FINISH = {
    "openai": "tool_calls",
    "huggingface": "tool_calls",
    "local": "tool_calls",
    "anthropic": "tool_use",
    "google": "STOP",
    "cohere": "TOOL_CALL",
    "ollama": "stop",
}


def post(client: httpx.Client, provider: str, user: str, **features: Any) -> dict[str, Any]:
    path, headers, body = build(provider, MODEL, user, **features)
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 200, (provider, response.text)
    return response.json()


def prompt_tokens(provider: str, data: dict[str, Any]) -> int:
    if provider in OPENAI_LIKE:
        return data["usage"]["prompt_tokens"]
    if provider == "anthropic":
        return data["usage"]["input_tokens"]
    if provider == "google":
        return data["usageMetadata"]["promptTokenCount"]
    if provider == "cohere":
        return data["usage"]["billed_units"]["input_tokens"]
    return data["prompt_eval_count"]


@pytest.mark.parametrize("provider", ALL)
def test_json_schema_reply_validates_and_repeats(client: httpx.Client, provider: str) -> None:
    data = post(client, provider, "Extract the person as JSON.", schema=PERSON)
    value = json.loads(text(provider, data))
    Draft202012Validator(PERSON, format_checker=FormatChecker()).validate(value)
    assert list(value) == ["name", "age", "emails"]
    again = post(client, provider, "Extract the person as JSON.", schema=PERSON)
    assert json.loads(text(provider, again)) == value
    assert not calls(provider, data)


@pytest.mark.parametrize("provider", ALL)
def test_schema_less_json_mode_is_an_object(client: httpx.Client, provider: str) -> None:
    if provider == "anthropic":
        pytest.skip("Anthropic has no schema-less JSON mode")
    data = post(client, provider, "Answer in json please.", schema=None)
    assert isinstance(json.loads(text(provider, data)), dict)


@pytest.mark.parametrize("provider", ALL)
def test_forced_tool_call_has_native_shape(client: httpx.Client, provider: str) -> None:
    choice = "required" if provider in ("cohere", "ollama") else "get_weather"
    user = "What is the weather? use get_weather" if provider == "ollama" else "Weather?"
    data = post(client, provider, user, tools=choice)
    got = calls(provider, data)
    assert [name for name, _ in got] == ["get_weather"]
    Draft202012Validator(WEATHER_PARAMS).validate(got[0][1])
    expected = "stop" if provider in OPENAI_LIKE else TOOL_FINISH[provider]  # named -> "stop"
    assert finish(provider, data) == expected
    assert calls(provider, post(client, provider, user, tools=choice)) == got


@pytest.mark.parametrize("provider", ALL)
def test_auto_calls_only_when_the_user_names_a_tool(client: httpx.Client, provider: str) -> None:
    plain = post(client, provider, "Tell me a story.", tools="auto")
    assert calls(provider, plain) == [] and text(provider, plain)
    named = post(client, provider, "Please call get_time now.", tools="auto")
    assert [n for n, _ in calls(provider, named)] == ["get_time"]
    assert finish(provider, named) == TOOL_FINISH[provider]


@pytest.mark.parametrize("provider", [*OPENAI_LIKE, "anthropic"])
def test_parallel_off_means_one_call(client: httpx.Client, provider: str) -> None:
    both = "use get_weather and get_time"
    on = post(client, provider, both, tools="required", parallel=True)
    off = post(client, provider, both, tools="required", parallel=False)
    assert [n for n, _ in calls(provider, on)] == ["get_weather", "get_time"]
    assert [n for n, _ in calls(provider, off)] == ["get_weather"]


@pytest.mark.parametrize("provider", ALL)
def test_tool_choice_none_answers_text(client: httpx.Client, provider: str) -> None:
    if provider == "ollama":
        pytest.skip("Ollama has no tool choice")
    data = post(client, provider, "call get_weather", tools="none")
    assert calls(provider, data) == [] and text(provider, data)


def _history(provider: str) -> tuple[str, dict[str, Any]]:
    """A conversation that ends with a tool result, in ``provider``'s native shape."""
    args = {"city": "Paris", "unit": "celsius"}
    user = "What is the weather in Paris? use get_weather"
    path, _, body = build(provider, MODEL, user, tools="auto")
    if provider == "anthropic":
        body["messages"] += [
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": args}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}],
            },
        ]
    elif provider == "google":
        body["contents"] += [
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": args}}]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"t": "18C"}}}],
            },
        ]
    elif provider == "ollama":
        body["messages"] += [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": args}}],
            },
            {"role": "tool", "content": "18C", "tool_name": "get_weather"},
        ]
    else:
        call = {"id": "call_1", "type": "function"}
        call["function"] = {"name": "get_weather", "arguments": json.dumps(args)}
        body["messages"] += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        ]
    return path, body


@pytest.mark.parametrize("provider", ALL)
def test_reply_after_a_tool_result_is_text(client: httpx.Client, provider: str) -> None:
    path, body = _history(provider)
    response = client.post(path, headers=_auth(provider, "sk-test"), json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert calls(provider, data) == [] and text(provider, data)


@pytest.mark.parametrize("provider", ALL)
def test_reply_after_a_tool_result_can_be_json(client: httpx.Client, provider: str) -> None:
    if provider == "cohere":
        pytest.skip("Cohere refuses response_format with tools")
    path, body = _history(provider)
    from feature_helpers import with_schema

    with_schema(provider, body, PERSON)
    response = client.post(path, headers=_auth(provider, "sk-test"), json=body)
    assert response.status_code == 200, response.text
    Draft202012Validator(PERSON).validate(json.loads(text(provider, response.json())))


STOP_FIELD = {"anthropic": "stop_sequences", "cohere": "stop_sequences"}
STOP_FINISH = {"anthropic": "stop_sequence", "cohere": "STOP_SEQUENCE", "google": "STOP"}


@pytest.mark.parametrize("provider", ALL)
def test_stop_cuts_the_text(client: httpx.Client, provider: str) -> None:
    path, headers, body = build(provider, MODEL, "Hello there")
    full = text(provider, client.post(path, headers=headers, json=body).json())
    assert " dolor " in full
    if provider == "google":
        body["generationConfig"] = {"stopSequences": ["dolor", "zzz"]}
    elif provider == "ollama":
        body["options"] = {"stop": ["dolor", "zzz"]}
    else:
        body[STOP_FIELD.get(provider, "stop")] = ["dolor", "zzz"]
    data = client.post(path, headers=headers, json=body).json()
    assert text(provider, data) == full[: full.index("dolor")]
    assert finish(provider, data) == STOP_FINISH.get(provider, "stop")
    if provider == "anthropic":
        assert data["stop_sequence"] == "dolor"


@pytest.mark.parametrize("provider", ALL)
def test_images_are_accepted_and_counted(client: httpx.Client, provider: str) -> None:
    without = post(client, provider, "Describe this.")
    with_image = post(client, provider, "Describe this.", image=True)
    expected = min(85, (len(PNG_B64) + 3) // 4)
    assert prompt_tokens(provider, with_image) - prompt_tokens(provider, without) == expected


def test_openai_https_image_url_counts_its_length(client: httpx.Client) -> None:
    path, headers, body = build("openai", MODEL, "hi")
    url = "https://example.com/cat.png"  # 27 bytes -> 7 tokens
    body["messages"][0]["content"] = [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
    ]
    data = client.post(path, headers=headers, json=body).json()
    assert data["usage"]["prompt_tokens"] == 1 + 3 + 7


def test_anthropic_url_image_and_gemini_file_data(client: httpx.Client) -> None:
    path, headers, body = build("anthropic", MODEL, "hi")
    body["messages"][0]["content"] = [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "hi"},
    ]
    assert client.post(path, headers=headers, json=body).status_code == 200
    path, headers, body = build("google", MODEL, "hi")
    body["contents"][0]["parts"].append(
        {"fileData": {"mimeType": "image/png", "fileUri": "files/abc"}}
    )
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_sampling_params_in_native_names(client: httpx.Client) -> None:
    extras = {
        "openai": {
            "top_p": 0.5,
            "seed": 7,
            "presence_penalty": 1,
            "frequency_penalty": -1,
            "user": "u",
        },
        "anthropic": {"top_p": 0.5, "top_k": 5, "temperature": 0.2},
        "cohere": {"p": 0.5, "k": 10, "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.1},
        "ollama": {"options": {"top_p": 0.5, "seed": 7, "top_k": 3, "num_predict": 50}},
    }
    for provider, fields in extras.items():
        path, headers, body = build(provider, "claude-3-5-haiku", "hi")
        body.update(fields)
        response = client.post(path, headers=headers, json=body)
        assert response.status_code == 200, (provider, response.text)
    path, headers, body = build("google", MODEL, "hi")
    body["generationConfig"] = {
        "topP": 0.5,
        "topK": 3,
        "seed": 7,
        "presencePenalty": 1.0,
        "candidateCount": 1,
    }
    assert client.post(path, headers=headers, json=body).status_code == 200


def test_gemini_snake_case_and_response_schema(client: httpx.Client) -> None:
    path, headers, body = build("google", MODEL, "hi")
    schema = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]}
    body["generation_config"] = {
        "response_mime_type": "application/json",
        "response_schema": schema,
    }
    response = client.post(path, headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert isinstance(json.loads(text("google", response.json()))["n"], int)


def test_request_log_keeps_bodies_as_received(sim: RunningSimulator, client: httpx.Client) -> None:
    for provider in ALL:
        path, headers, body = build(provider, MODEL, "call get_weather", tools="auto", image=True)
        headers = {**headers, "anthropic-beta": "x"} if provider == "anthropic" else headers
        client.post(path, headers=headers, json=body)
        entry = sim.requests(provider=provider, limit=1)[0]
        assert entry["request"]["body"] == body
        assert entry["request"]["path"] == path
        if provider == "anthropic":
            assert entry["request"]["headers"]["anthropic-beta"] == "x"
    assert len(sim.requests()) == len(ALL)
    bad = client.post("/openai/v1/chat/completions", headers=_auth("openai", "k"), content=b"{nope")
    assert bad.status_code == 400
    assert sim.requests(provider="openai", limit=1)[0]["request"]["raw"] == "{nope"


def test_body_log_size_bounds_what_is_kept(sim: RunningSimulator, client: httpx.Client) -> None:
    sim.set_config({"body_log_size": 2})
    for i in range(4):
        path, headers, body = build("openai", MODEL, f"hi {i}")
        client.post(path, headers=headers, json=body)
    assert len(sim.log()) == 4
    kept = sim.requests()
    assert [e["request"]["body"]["messages"][0]["content"] for e in kept] == ["hi 2", "hi 3"]


SEED_AND_STOP = {
    "openai": lambda b: b.update(seed=7, stop=["zzz"]),
    "huggingface": lambda b: b.update(seed=7, stop=["zzz"]),
    "local": lambda b: b.update(seed=7, stop=["zzz"]),
    "anthropic": lambda b: b.update(stop_sequences=["zzz"]),
    "google": lambda b: b["generationConfig"].update(seed=7, stopSequences=["zzz"]),
    "cohere": lambda b: b.update(seed=7, stop_sequences=["zzz"]),
    "ollama": lambda b: b.update(options={"seed": 7, "stop": ["zzz"]}),
}


@pytest.mark.parametrize("provider", ALL)
def test_log_summarises_what_each_request_asked_for(
    sim: RunningSimulator, client: httpx.Client, provider: str
) -> None:
    path, headers, body = build(provider, MODEL, "Person as JSON", schema=PERSON, image=True)
    SEED_AND_STOP[provider](body)
    assert client.post(path, headers=headers, json=body).status_code == 200
    got = sim.requests(provider=provider, limit=1)[0]["request"]["features"]
    assert got["json"] is True and got["schema"] == PERSON
    assert (got["images"], got["stop"]) == (1, ["zzz"])
    assert got["seed"] == (None if provider == "anthropic" else 7)
    hist_path, hist_body = _history(provider)
    assert client.post(hist_path, headers=headers, json=hist_body).status_code == 200
    got = sim.requests(provider=provider, limit=1)[0]["request"]["features"]
    assert (got["history_tool_calls"], got["tool_results"]) == (1, 1)
    assert got["tools"] == ["get_weather", "get_time"] and got["tool_choice"] == "auto"


def test_hf_value_and_vllm_structured_outputs_carry_a_schema(client: httpx.Client) -> None:
    path, headers, body = build("huggingface", MODEL, "hi")
    body["response_format"] = {"type": "json_object", "value": PERSON}
    data = client.post(path, headers=headers, json=body).json()
    Draft202012Validator(PERSON).validate(json.loads(text("huggingface", data)))
    path, headers, body = build("local", MODEL, "hi")
    body["structured_outputs"] = {"json": PERSON}
    data = client.post(path, headers=headers, json=body).json()
    Draft202012Validator(PERSON).validate(json.loads(text("local", data)))


def test_ollama_stream_carries_tool_calls_in_the_last_line(client: httpx.Client) -> None:
    path, headers, body = build("ollama", MODEL, "call get_time", tools="auto")
    body["stream"] = True
    response = client.post(path, headers=headers, json=body)
    lines = [json.loads(x) for x in response.text.splitlines()]
    assert lines[-1]["done"] is True
    assert lines[-1]["message"]["tool_calls"][0]["function"]["name"] == "get_time"


def test_gemini_text_enum_answers_the_bare_value(client: httpx.Client) -> None:
    path, headers, body = build("google", MODEL, "Classify")
    schema = {"type": "STRING", "enum": ["POSITIVE", "NEGATIVE"]}
    body["generationConfig"] = {"responseMimeType": "text/x.enum", "responseSchema": schema}
    assert text("google", client.post(path, headers=headers, json=body).json()) in schema["enum"]
