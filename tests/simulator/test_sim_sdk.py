"""Cross-checks against the official provider SDKs (dev extras; skipped when not installed).

If an SDK parses the simulator's replies, raises the right exception class for its errors and
honours its Retry-After hints, the wire formats are right.
"""

from __future__ import annotations

from typing import Any

import pytest

from simulator.server import RunningSimulator

pytestmark = pytest.mark.sdk

USER = [{"role": "user", "content": "hi"}]


def test_openai_sdk(sim: RunningSimulator) -> None:
    openai: Any = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=sim.api_base("openai"), api_key="sk-x", max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o", messages=USER, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 5)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=sim.api_base("openai"), api_key="bad", max_retries=0
        ).chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing-x", messages=USER)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert info.value.code == "context_length_exceeded"
    for provider in ("huggingface", "local"):
        other = openai.OpenAI(base_url=sim.api_base(provider), api_key="k")
        assert other.chat.completions.create(model="m", messages=USER).usage.total_tokens == 24


def test_openai_sdk_honours_retry_after(sim: RunningSimulator) -> None:
    openai: Any = pytest.importorskip("openai")
    sim.configure("openai", rate_429=0.5, retry_after_s=0.2)
    client = openai.OpenAI(base_url=sim.api_base("openai"), api_key="sk-x", max_retries=8)
    for i in range(5):
        client.chat.completions.create(
            model="gpt-r", messages=[{"role": "user", "content": str(i)}]
        )
    log = sim.log(provider="openai")
    for before, after in zip(log, log[1:], strict=False):
        if before["status"] == 429:
            assert after["t"] >= before["t"] + before["retry_after"]


def test_anthropic_sdk(sim: RunningSimulator) -> None:
    anthropic: Any = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=sim.api_base("anthropic"), api_key="k", max_retries=0)
    reply = client.messages.create(model="claude-x", max_tokens=50, system="sys", messages=USER)
    assert reply.stop_reason == "end_turn" and reply.usage.input_tokens == 8
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="missing-c", max_tokens=5, messages=USER)
    sim.configure("anthropic", rate_529=1.0)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert info.value.status_code == 529


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # cohere uses pydantic v1 APIs
def test_cohere_sdk(sim: RunningSimulator) -> None:
    cohere: Any = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="co-x", base_url=sim.api_base("cohere"))
    reply = client.chat(model="command-r", messages=USER, max_tokens=4)
    assert reply.finish_reason == "MAX_TOKENS"
    assert reply.usage.billed_units.output_tokens == 4


def test_google_genai_sdk(sim: RunningSimulator) -> None:
    genai: Any = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    options = types.HttpOptions(base_url=sim.api_base("google"))
    client = genai.Client(api_key="g-x", http_options=options)
    config = types.GenerateContentConfig(max_output_tokens=3, system_instruction="sys")
    reply = client.models.generate_content(model="gemini-x", contents="hi", config=config)
    assert reply.usage_metadata.candidates_token_count == 3
    assert reply.model_version == "gemini-x"
    sim.configure("google", rate_429=1.0, retry_after_s=2)
    with pytest.raises(genai.errors.ClientError) as info:
        client.models.generate_content(model="gemini-x", contents="hi")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
