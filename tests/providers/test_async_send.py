"""Issue 21: `complete_async` (aiohttp) gives what `adapter.complete` (httpx) gives, for every
shipped provider flavour, over real HTTP: the simulator for replies, faults and hostile replies,
and rawhttp.py's canned bytes for what the simulator cannot send. Each case runs both paths on
the same adapter, resetting the simulator between them, and compares the outcomes."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from core.errors import (
    LLMProviderError,
    MalformedReply,
    ModelUnavailable,
    ProviderTimeout,
    ProviderUnavailable,
    ReplyTooLarge,
)
from schemas.request import Features
from simulator.hostile import HOSTILE_MODES
from workers.providers import build_adapter
from workers.providers.async_send import complete_async, make_async_session
from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest

from .feature_cases import WEATHER
from .rawhttp import raw_server
from .simhelp import FLAVOURS, TEST_KEY, adapter_for, request, sim_config
from .test_adapters_http import _closed_port

ALL = sorted(FLAVOURS)
KEY = "sk-async-9c2e71d04b5a"
TOOLS = Features(tools=(WEATHER,), tool_choice="required")


def run_async(adapter: ProviderAdapter, req: ProviderRequest) -> ProviderReply:
    async def one() -> ProviderReply:
        async with make_async_session(max_connections=4) as session:
            return await complete_async(adapter, req, session)

    return asyncio.run(one())


def _id(request_id: str | None) -> str | None:
    """A request id without the simulator's per-request counter (its last 12 hex digits)."""
    return re.sub(r"[0-9a-f]{12}$", "#", request_id) if request_id else request_id


def outcome(call: Callable[[], ProviderReply]) -> tuple[Any, ...]:
    """The error's class and fields, or the reply, without what differs call to call: latency,
    the request counter in ids, the seconds until a rate-limit window resets."""
    try:
        reply = call()
    except LLMProviderError as exc:
        return (type(exc), exc.status, exc.retry_after, _id(exc.request_id), str(exc))
    limits = reply.rate_limits
    if limits is not None:
        limits = replace(
            limits,
            reset_requests_s=limits.reset_requests_s is not None,
            reset_tokens_s=limits.reset_tokens_s is not None,
        )
    return (
        ProviderReply,
        replace(reply, latency_ms=0, rate_limits=limits, request_id=_id(reply.request_id)),
    )


def both(sim: Any, adapter: ProviderAdapter, req: ProviderRequest) -> tuple[Any, Any]:
    """(sync outcome, async outcome), the simulator's counters and windows reset before each."""
    sim.reset()
    sync = outcome(lambda: adapter.complete(req))
    sim.reset()
    return sync, outcome(lambda: run_async(adapter, req))


# ---- replies --------------------------------------------------------------------------------

REPLIES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {  # case: (settings, request kw)
    "plain": ({}, {}),
    "system_and_temperature": ({}, {"system": "Answer briefly.", "temperature": 0.5}),
    "cut_by_max_tokens": ({}, {"max_tokens": 2}),
    "tool_call": ({}, {"features": TOOLS}),
    "rate_limit_headers": ({"rpm": 100, "tpm": 100_000}, {}),
}


@pytest.mark.parametrize("flavour", ALL)
@pytest.mark.parametrize("case", list(REPLIES))
def test_the_async_reply_equals_the_sync_reply(sim, client, flavour: str, case: str) -> None:
    behaviour, kw = REPLIES[case]
    if behaviour:
        sim.configure(flavour, **behaviour)
    sync, got = both(sim, adapter_for(sim, flavour, client), request(**kw))
    assert got == sync
    if case == "tool_call" and sync[0] is ProviderReply:
        assert sync[1].tool_calls and sync[1].finish_reason == "tool_calls"


def test_tool_calls_come_back_where_the_simulator_makes_them(sim, client) -> None:
    made = [f for f in ALL if both(sim, adapter_for(sim, f, client), request(features=TOOLS))[1]]
    assert {"openai", "anthropic", "google", "cohere"} <= set(made)


# ---- provider errors --------------------------------------------------------------------------

ERRORS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # case: (simulator behaviour, adapter settings, request kw)
    "429_retry_after": ({"rate_429": 1.0, "retry_after_s": 2.5}, {}, {}),
    "500": ({"rate_500": 1.0}, {}, {}),
    "503": ({"rate_503": 1.0}, {}, {}),
    "529": ({"rate_529": 1.0}, {}, {}),
    "401_bad_key": ({}, {"key": "bad-key-0123456789"}, {}),
    "400_bad_request": ({}, {}, {"messages": ()}),
    "400_context_too_long": (
        {},
        {"model": "tiny-model"},
        {"model": "tiny-model", "text": "word " * 1200, "max_tokens": 100},
    ),
    "404_unknown_model": ({}, {"model": "missing-model"}, {"model": "missing-model"}),
    "malformed_200": ({"rate_malformed": 1.0}, {}, {}),
    "timeout": ({"rate_timeout": 1.0, "timeout_hold_s": 3.0}, {"timeout_s": 0.2}, {}),
    "down": ({"down": True}, {}, {}),
}


@pytest.mark.parametrize("flavour", ALL)
@pytest.mark.parametrize("case", list(ERRORS))
def test_the_async_error_equals_the_sync_error(sim, client, flavour: str, case: str) -> None:
    behaviour, settings, kw = ERRORS[case]
    if behaviour:
        sim.configure(flavour, **behaviour)
    sync, got = both(sim, adapter_for(sim, flavour, client, **settings), request(**kw))
    assert issubclass(sync[0], LLMProviderError), sync
    assert got == sync  # class, status, retry_after, request_id, message


# ---- hostile replies --------------------------------------------------------------------------

SLOW_MODES = {
    "huge_body": {"hostile_body_bytes": 400_000_000, "max_reply_bytes": 1_000_000},
    "slow_drip": {"hostile_drip_s": 6.0, "timeout_s": 1.0},
}


def _hostile(sim: Any, client: Any, flavour: str, mode: str) -> tuple[Any, Any]:
    settings = dict(SLOW_MODES.get(mode, {}))
    behaviour = {k: settings.pop(k) for k in list(settings) if k.startswith("hostile_")}
    sim.configure(flavour, hostile=mode, **behaviour)
    return both(sim, adapter_for(sim, flavour, client, key=KEY, **settings), request())


@pytest.mark.parametrize("flavour", ALL)
@pytest.mark.parametrize("mode", [m for m in HOSTILE_MODES if m not in SLOW_MODES])
def test_a_hostile_reply_ends_the_same_on_both_paths(sim, client, flavour: str, mode: str) -> None:
    sync, got = _hostile(sim, client, flavour, mode)
    assert got == sync
    assert KEY not in repr(got)


@pytest.mark.parametrize("flavour", ["openai", "anthropic", "google", "ollama"])
@pytest.mark.parametrize(("mode", "error"), [("huge_body", ReplyTooLarge), ("slow_drip", None)])
def test_huge_and_dripping_bodies_stop_like_the_sync_path(sim, client, flavour, mode, error):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    sync, got = _hostile(sim, client, flavour, mode)
    # a drip's "(N bytes read)" depends on when the deadline falls between two drops
    assert _drip_count_masked(got) == _drip_count_masked(sync)
    assert got[0] is (error or ProviderTimeout)
    assert time.monotonic() - started < 12  # both stopped early: 1 MB read, or 1 s of drip


def _drip_count_masked(outcome: tuple) -> tuple:  # type: ignore[type-arg]
    return tuple(
        re.sub(r"\(\d+ bytes read\)", "(N bytes read)", v) if isinstance(v, str) else v
        for v in outcome
    )


# ---- what only raw bytes can send ---------------------------------------------------------------


class _At:
    """Stands in for the simulator in `adapter_for`: every flavour's base is `base`."""

    def __init__(self, base: str) -> None:
        self.base = base

    def api_base(self, flavour: str) -> str:
        return self.base


def _adapter_at(client: Any, base: str, **settings: Any) -> ProviderAdapter:
    return adapter_for(_At(base), "openai", client, key=KEY, **settings)


def _texts(exc: BaseException | None) -> str:
    """str and repr of an exception and of everything chained to it."""
    seen = ""
    while exc is not None:
        seen += f"{exc}\n{exc!r}\n"
        exc = exc.__cause__ or exc.__context__
    return seen


RAW: dict[str, type[Exception] | None] = {  # case: the error (None = a reply)
    "ok_gzip": None,
    "declared_huge": ReplyTooLarge,
    "gzip_bomb": ReplyTooLarge,
    "bad_gzip": MalformedReply,
    "redirect": LLMProviderError,  # classified like any non-2xx; never followed
    "redirect_307": LLMProviderError,
    "truncated": ProviderUnavailable,
    "bad_http": ProviderUnavailable,
    "stall": ProviderTimeout,
}
TRANSPORT = {"truncated", "bad_http"}  # aiohttp and httpx word these differently


@pytest.mark.parametrize("case", list(RAW))
def test_raw_replies_end_the_same_on_both_paths(client, case: str) -> None:
    with raw_server() as server:
        adapter = _adapter_at(client, server.base(case), max_reply_bytes=100_000, timeout_s=1.0)
        sync = outcome(lambda: adapter.complete(request()))
        got = outcome(lambda: run_async(adapter, request()))
        assert not any(p.startswith("/landing") for p in server.paths), server.paths
    expected = RAW[case]
    if expected is None:
        assert got == sync and got[1].text == "raw hello"
        return
    assert issubclass(got[0], expected) and got[0] is sync[0]
    assert got[1:3] == sync[1:3]  # status, retry_after
    if case not in TRANSPORT:
        assert got == sync
    assert KEY not in repr(got)


def test_no_key_in_any_chained_error(client) -> None:
    with raw_server() as server:
        for case in ("bad_http", "truncated", "redirect", "declared_huge"):
            adapter = _adapter_at(client, server.base(case), max_reply_bytes=100_000)
            with pytest.raises(LLMProviderError) as caught:
                run_async(adapter, request())
            assert KEY not in _texts(caught.value), case


# ---- transport failures and misuse --------------------------------------------------------------


@pytest.mark.parametrize("flavour", ALL)
def test_connection_refused_is_unavailable(sim, client, flavour: str) -> None:
    adapter = adapter_for(sim, flavour, client, api_base=f"http://127.0.0.1:{_closed_port()}/x")
    sync, got = both(sim, adapter, request())
    assert got[0] is sync[0] is ProviderUnavailable
    with pytest.raises(ProviderUnavailable) as caught:
        run_async(adapter, request())
    assert caught.value.provider == FLAVOURS[flavour][0].value
    assert caught.value.model == "test-model"
    assert isinstance(caught.value.__cause__, Exception)
    assert TEST_KEY not in _texts(caught.value)


@pytest.mark.parametrize(
    ("base", "error"),
    [
        # config refuses such a base; an adapter may still be handed one (a retired-base map)
        ("ftp://127.0.0.1/x", ModelUnavailable),
        ("https://no-such-host.invalid/x", ProviderUnavailable),  # DNS
    ],
)
def test_unsendable_urls_fail_as_on_the_sync_path(client, base: str, error: type) -> None:
    adapter = _adapter_at(client, "https://127.0.0.1/x")
    adapter.url = base + adapter.chat_path  # type: ignore[attr-defined]
    sync = outcome(lambda: adapter.complete(request()))
    got = outcome(lambda: run_async(adapter, request()))
    assert got[0] is sync[0] is error
    assert got[1:4] == sync[1:4]


def test_a_rotating_key_pool_is_refused(sim, client) -> None:
    config = sim_config(
        sim, "openai", key=None, api_keys=["sk-rot-a-11112222", "sk-rot-b-33334444"]
    )
    adapter = build_adapter(config.models[0], config, client)
    assert adapter.keys
    with pytest.raises(ValueError, match="rotating key pool"):
        run_async(adapter, request())


def test_the_session_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):
        make_async_session()


def test_many_calls_share_one_session_and_loop(sim, client) -> None:
    adapter = adapter_for(sim, "openai", client)
    texts = [f"question {i}" for i in range(60)]

    async def all_at_once() -> list[ProviderReply]:
        async with make_async_session(max_connections=8) as session:
            calls = [complete_async(adapter, request(text=t), session) for t in texts]
            return await asyncio.gather(*calls)

    replies = asyncio.run(all_at_once())
    assert [r.text for r in replies] == [adapter.complete(request(text=t)).text for t in texts]
