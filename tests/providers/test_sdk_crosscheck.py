"""Dev-only cross-check: the official SDKs, pointed at the simulator, accept its replies (they
parse in the SDK's own types) and the simulator accepts their requests. Our adapter must get
the same text and usage for the same request. Keeps the simulator, and so our tests, honest.

Run with `pytest -m sdk`; a provider's case is skipped when its SDK is not installed
(`pip install -e .[dev]`)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.job import ChatMessage

from .simhelp import TEST_KEY, adapter_for, request

pytestmark = pytest.mark.sdk

PROMPT = "Say hello to the SDK."


def sdk(name: str) -> Any:
    return pytest.importorskip(name, reason=f"SDK {name!r} not installed (pip install -e .[dev])")


def ours(sim: Any, client: Any, flavour: str, model: str, max_tokens: int = 20) -> Any:
    adapter = adapter_for(sim, flavour, client, model=model)
    messages = (ChatMessage(role="user", content=PROMPT),)
    return adapter.complete(
        request(model=model, messages=messages, max_tokens=max_tokens, system="Be kind.")
    )


@pytest.mark.parametrize("flavour", ["openai", "huggingface", "local"])
def test_openai_sdk(sim, client, flavour):
    openai = sdk("openai")
    api = openai.OpenAI(api_key=TEST_KEY, base_url=sim.api_base(flavour), max_retries=0)
    reply = api.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": PROMPT}],
        max_completion_tokens=20,
    )
    assert isinstance(reply, openai.types.chat.ChatCompletion)
    mine = ours(sim, client, flavour, "gpt-4o-mini")
    assert reply.choices[0].message.content == mine.text
    assert reply.choices[0].finish_reason == mine.finish_reason
    assert reply.usage.prompt_tokens == mine.usage.prompt_tokens
    assert reply.usage.completion_tokens == mine.usage.completion_tokens


def test_openai_sdk_errors(sim):
    openai = sdk("openai")
    bad = openai.OpenAI(api_key="bad-key", base_url=sim.api_base("openai"), max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    sim.configure("openai", rate_429=1.0, retry_after_s=1)
    api = openai.OpenAI(api_key=TEST_KEY, base_url=sim.api_base("openai"), max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        api.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert info.value.response.headers["retry-after"] == "1"


def test_anthropic_sdk(sim, client):
    anthropic = sdk("anthropic")
    api = anthropic.Anthropic(api_key=TEST_KEY, base_url=sim.api_base("anthropic"), max_retries=0)
    reply = api.messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        system="Be kind.",
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert isinstance(reply, anthropic.types.Message)
    mine = ours(sim, client, "anthropic", "claude-haiku-4-5")
    assert reply.content[0].text == mine.text
    assert reply.usage.input_tokens == mine.usage.prompt_tokens
    assert reply.usage.output_tokens == mine.usage.completion_tokens


def test_anthropic_sdk_overloaded(sim):
    anthropic = sdk("anthropic")
    sim.configure("anthropic", rate_529=1.0)
    api = anthropic.Anthropic(api_key=TEST_KEY, base_url=sim.api_base("anthropic"), max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as info:
        api.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 529


def test_cohere_sdk(sim, client):
    cohere = sdk("cohere")
    api = cohere.ClientV2(api_key=TEST_KEY, base_url=sim.api_base("cohere"))
    reply = api.chat(
        model="command-r-08-2024",
        messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": PROMPT}],
        max_tokens=20,
    )
    mine = ours(sim, client, "cohere", "command-r-08-2024")
    assert reply.message.content[0].text == mine.text
    assert int(reply.usage.billed_units.input_tokens) == mine.usage.prompt_tokens
    assert int(reply.usage.billed_units.output_tokens) == mine.usage.completion_tokens


def test_google_genai_sdk(sim, client):
    sdk("google.genai")
    from google import genai
    from google.genai import types

    api = genai.Client(
        api_key=TEST_KEY,
        http_options=types.HttpOptions(base_url=sim.api_base("google"), api_version="v1beta"),
    )
    reply = api.models.generate_content(
        model="gemini-2.5-flash",
        contents=PROMPT,
        config=types.GenerateContentConfig(max_output_tokens=20, system_instruction="Be kind."),
    )
    assert isinstance(reply, types.GenerateContentResponse)
    mine = ours(sim, client, "google", "gemini-2.5-flash")
    assert reply.text == mine.text
    assert reply.usage_metadata.prompt_token_count == mine.usage.prompt_tokens
    assert reply.usage_metadata.candidates_token_count == mine.usage.completion_tokens


def test_google_genai_sdk_rate_limit(sim):
    sdk("google.genai")
    from google import genai
    from google.genai import errors, types

    sim.configure("google", rate_429=1.0, retry_after_s=7)
    api = genai.Client(
        api_key=TEST_KEY,
        http_options=types.HttpOptions(base_url=sim.api_base("google"), api_version="v1beta"),
    )
    with pytest.raises(errors.ClientError) as info:
        api.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert info.value.code == 429
    assert any("RetryInfo" in d.get("@type", "") for d in info.value.details["error"]["details"])
