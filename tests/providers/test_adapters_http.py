"""Every adapter against the simulator over real HTTP: success, and every error class."""

from __future__ import annotations

import socket

import pytest

from core.errors import (
    AuthFailed,
    BadRequest,
    ContextTooLong,
    MalformedReply,
    ModelUnavailable,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from schemas.job import ChatMessage

from .simhelp import FLAVOURS, adapter_for, request, sim_config

ALL = list(FLAVOURS)
WITH_RATE_HEADERS = ["openai", "anthropic"]


@pytest.mark.parametrize("flavour", ALL)
def test_success_text_finish_usage(sim, client, flavour):
    adapter = adapter_for(sim, flavour, client)
    reply = adapter.complete(request(system="Answer briefly."))
    assert reply.text.startswith("sim:")
    assert reply.finish_reason == "stop"
    assert not reply.usage.estimated
    served = sim.stats()["providers"][flavour]["models"]["test-model"]
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        served["prompt_tokens"],
        served["completion_tokens"],
    )
    assert reply.latency_ms >= 0


@pytest.mark.parametrize("flavour", ALL)
def test_same_request_same_reply(sim, client, flavour):
    adapter = adapter_for(sim, flavour, client)
    assert adapter.complete(request()).text == adapter.complete(request()).text


@pytest.mark.parametrize("flavour", ALL)
def test_max_tokens_cut_is_length(sim, client, flavour):
    reply = adapter_for(sim, flavour, client).complete(request(max_tokens=2))
    assert reply.finish_reason == "length"
    assert reply.usage.completion_tokens == 2


@pytest.mark.parametrize("flavour", ALL)
def test_multi_turn_with_system_messages_is_accepted(sim, client, flavour):
    messages = (
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="Hi."),
        ChatMessage(role="user", content="Two user turns in a row."),
        ChatMessage(role="assistant", content="Fine."),
        ChatMessage(role="user", content="And now?"),
    )
    reply = adapter_for(sim, flavour, client).complete(
        request(messages=messages, system="Top-level system.", temperature=1.5)
    )
    assert reply.text.startswith("sim:")


@pytest.mark.parametrize("flavour", ["openai", "anthropic", "cohere", "huggingface", "local"])
def test_request_id_from_header(sim, client, flavour):
    assert adapter_for(sim, flavour, client).complete(request()).request_id.startswith("req_")


def test_google_request_id_and_models_prefix(sim, client):
    adapter = adapter_for(sim, "google", client, model="models/gemini-2.5-flash")
    reply = adapter.complete(request(model="models/gemini-2.5-flash"))
    assert reply.request_id
    assert reply.model == "gemini-2.5-flash"


@pytest.mark.parametrize("flavour", WITH_RATE_HEADERS)
def test_rate_limit_headers(sim, client, flavour):
    sim.configure(flavour, rpm=100, tpm=100_000)
    reply = adapter_for(sim, flavour, client).complete(request())
    limits = reply.rate_limits
    assert limits is not None
    assert limits.limit_requests == 100
    assert limits.remaining_requests == 99
    assert limits.limit_tokens == 100_000
    assert limits.reset_requests_s is not None and limits.reset_requests_s >= 0
    assert limits.reset_tokens_s is not None and limits.reset_tokens_s >= 0


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", ALL)
def test_rate_limited_with_retry_after(sim, client, flavour):
    sim.configure(flavour, rate_429=1.0, retry_after_s=2.5)
    with pytest.raises(RateLimited) as info:
        adapter_for(sim, flavour, client).complete(request())
    err = info.value
    assert err.status == 429
    assert err.retry_after == pytest.approx(2.5)  # google: from RetryInfo in the body
    assert err.provider == FLAVOURS[flavour][0].value
    assert err.model == "test-model"


@pytest.mark.parametrize("flavour", ALL)
def test_rpm_window_429_says_when(sim, client, flavour):
    sim.configure(flavour, rpm=1)
    adapter = adapter_for(sim, flavour, client)
    adapter.complete(request())
    with pytest.raises(RateLimited) as info:
        adapter.complete(request())
    assert 0 < info.value.retry_after <= 60


@pytest.mark.parametrize("flavour", ALL)
@pytest.mark.parametrize(
    ("knob", "anthropic_status", "other_status"),
    [("rate_500", 500, 500), ("rate_503", 503, 503), ("rate_529", 529, 503)],
)
def test_unavailable(sim, client, flavour, knob, anthropic_status, other_status):
    sim.configure(flavour, **{knob: 1.0})
    with pytest.raises(ProviderUnavailable) as info:
        adapter_for(sim, flavour, client).complete(request())
    expected = anthropic_status if flavour == "anthropic" else other_status
    assert info.value.status == expected


@pytest.mark.parametrize("flavour", ALL)
def test_down_is_unavailable(sim, client, flavour):
    sim.configure(flavour, down=True)
    with pytest.raises(ProviderUnavailable):
        adapter_for(sim, flavour, client).complete(request())


@pytest.mark.parametrize("flavour", ALL)
def test_timeout(sim, client, flavour):
    sim.configure(flavour, rate_timeout=1.0, timeout_hold_s=3.0)
    adapter = adapter_for(sim, flavour, client, timeout_s=0.2)
    with pytest.raises(ProviderTimeout) as info:
        adapter.complete(request())
    assert info.value.status is None  # we gave up; the provider never answered


@pytest.mark.parametrize("flavour", ALL)
def test_bad_key_is_auth_failed(sim, client, flavour):
    with pytest.raises(AuthFailed) as info:
        adapter_for(sim, flavour, client, key="bad-key-0123456789").complete(request())
    assert info.value.status == 401
    assert "bad-key-0123456789" not in str(info.value)


@pytest.mark.parametrize("flavour", ["openai", "anthropic", "google", "cohere", "huggingface"])
def test_missing_key_is_auth_failed(sim, client, flavour):
    with pytest.raises(AuthFailed):
        adapter_for(sim, flavour, client, key=None).complete(request())


@pytest.mark.parametrize("flavour", ["local", "ollama"])
def test_local_needs_no_key(sim, client, flavour):
    assert adapter_for(sim, flavour, client, key=None).complete(request()).text


@pytest.mark.parametrize("flavour", ALL)
def test_unknown_model(sim, client, flavour):
    adapter = adapter_for(sim, flavour, client, model="missing-model")
    with pytest.raises(ModelUnavailable) as info:
        adapter.complete(request(model="missing-model"))
    assert info.value.status == 404


@pytest.mark.parametrize("flavour", ALL)
def test_bad_request(sim, client, flavour):
    with pytest.raises(BadRequest) as info:
        adapter_for(sim, flavour, client).complete(request(messages=()))
    assert info.value.status == 400
    assert type(info.value) is BadRequest


@pytest.mark.parametrize("flavour", ALL)
def test_context_too_long(sim, client, flavour):
    adapter = adapter_for(sim, flavour, client, model="tiny-model")
    with pytest.raises(ContextTooLong) as info:
        adapter.complete(request(model="tiny-model", text="word " * 1200, max_tokens=100))
    assert info.value.status == 400


@pytest.mark.parametrize("flavour", ALL)
def test_malformed_reply(sim, client, flavour):
    sim.configure(flavour, rate_malformed=1.0)
    with pytest.raises(MalformedReply) as info:
        adapter_for(sim, flavour, client).complete(request())
    assert info.value.status == 200


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("flavour", ALL)
def test_connection_refused_is_unavailable(sim, client, flavour):
    from workers.providers import build_adapter

    config = sim_config(sim, flavour, api_base=f"http://127.0.0.1:{_closed_port()}/x")
    adapter = build_adapter(config.models[0], config, client)
    with pytest.raises(ProviderUnavailable) as info:
        adapter.complete(request())
    assert isinstance(info.value.__cause__, Exception)
