"""Issue 20: every hostile reply class against every adapter flavour, called directly.

Each call must end as a reply or an `LLMProviderError` (never OverflowError, UnicodeError or a
hang); a huge body fails `reply_too_large` after reading at most the limit; a slow drip fails as
a timeout; an unbounded Retry-After is cut to the cap; absurd usage is flagged by the usage
check for every dialect's usage fields.
"""

from __future__ import annotations

import pickle
import time
from typing import Any

import pytest

from core.errors import (
    LLMProviderError,
    MalformedReply,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    ReplyTooLarge,
)
from schemas.job import ChatMessage
from tests.providers.simhelp import FLAVOURS, adapter_for
from workers.providers.base import ProviderRequest
from workers.usage_check import usage_problem

KEY = "sk-hostile-7d41c9aa03e5b6f2"
REQUEST = ProviderRequest(
    model_id="test-model", messages=(ChatMessage(role="user", content="Say hi."),), max_tokens=64
)
USAGE_MODES = ("usage_absurd", "usage_negative", "usage_fraction", "usage_string", "usage_huge")


def _call(sim: Any, client: Any, flavour: str, mode: str, **settings: Any) -> Any:
    behaviour = {k: settings.pop(k) for k in list(settings) if k.startswith("hostile_")}
    sim.configure(flavour, hostile=mode, **behaviour)
    adapter = adapter_for(sim, flavour, client, key=KEY, **settings)
    try:
        return adapter.complete(REQUEST)
    except LLMProviderError as exc:
        return exc


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("mode", USAGE_MODES)
def test_untrusted_usage_is_flagged_in_every_dialect(sim, client, flavour: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    got = _call(sim, client, flavour, mode)
    if isinstance(got, LLMProviderError):  # a count a reply model requires may be refused
        assert isinstance(got, MalformedReply), got
        return
    assert usage_problem(got.usage, None, REQUEST.max_tokens) is not None, got.usage


@pytest.mark.parametrize("flavour", ["openai", "anthropic", "google", "ollama"])
def test_a_huge_body_fails_reply_too_large_after_the_limit(sim, client, flavour: str) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    got = _call(
        sim, client, flavour, "huge_body", hostile_body_bytes=400_000_000, max_reply_bytes=1_000_000
    )
    assert isinstance(got, ReplyTooLarge), got
    assert got.kind == "reply_too_large"
    assert time.monotonic() - started < 10  # stopped at 1 MB, not after 400 MB
    assert len(str(got)) < 500


def test_a_body_within_the_limit_is_read_whole(sim, client) -> None:  # type: ignore[no-untyped-def]
    sim.configure("openai", hostile=None)
    adapter = adapter_for(sim, "openai", client, key=KEY, max_reply_bytes=2048)
    assert adapter.complete(REQUEST).text.startswith("sim:")


def test_a_slow_drip_times_out_on_the_whole_body(sim, client) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    got = _call(sim, client, "openai", "slow_drip", hostile_drip_s=6.0, timeout_s=1.0)
    assert isinstance(got, ProviderTimeout), got
    assert time.monotonic() - started < 4


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_an_unbounded_retry_after_is_capped(sim, client, flavour: str) -> None:  # type: ignore[no-untyped-def]
    got = _call(sim, client, flavour, "retry_after_unbounded", max_retry_after_s=90.0)
    assert isinstance(got, RateLimited), got
    assert got.retry_after == 90.0


def test_the_default_retry_after_cap_is_an_hour(sim, client) -> None:  # type: ignore[no-untyped-def]
    got = _call(sim, client, "openai", "retry_after_unbounded")
    assert isinstance(got, RateLimited) and got.retry_after == 3600.0


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("mode", ["html_error", "error_in_200", "invalid_utf8"])
def test_garbage_ends_in_the_error_tree(sim, client, flavour: str, mode: str) -> None:  # type: ignore[no-untyped-def]
    got = _call(sim, client, flavour, mode)
    if mode == "html_error":
        assert isinstance(got, ProviderUnavailable) and got.status == 502
    elif mode == "error_in_200":
        assert isinstance(got, MalformedReply), got
    else:  # invalid UTF-8: unreadable (malformed) or decoded with replacement characters
        assert isinstance(got, MalformedReply) or "\ufffd" in got.text, got


# Issue 20 items 3-4: redaction by fragment, request_id scrubbing (core/secrets_scrub.py).
S2_MODES = ("echo_key", "echo_key_partial", "key_in_request_id")


@pytest.mark.parametrize("flavour", ["openai", "anthropic", "google", "cohere"])
@pytest.mark.parametrize("mode", S2_MODES)
def test_echoed_keys_never_reach_an_exception_or_reply(
    sim, client, flavour: str, mode: str
) -> None:  # type: ignore[no-untyped-def]
    got = _call(sim, client, flavour, mode)
    if isinstance(got, LLMProviderError):
        seen = f"{got} {got!r} {pickle.dumps(got)!r} {vars(got)!r}"
    else:
        seen = f"{got!r}"
    fragments = [KEY, KEY[:8], KEY[-8:]]
    leaked = [f for f in fragments if f in seen]
    assert not leaked, seen
