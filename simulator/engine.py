"""The provider-independent request pipeline behind every simulated chat endpoint.

This module owns the order in which a chat request is judged, the same for all providers:

1. auth (dialect) -> 401; 2. JSON body and fields (dialect) -> 400;
3. behaviour for (provider, model); ``down`` -> 503;
4. model name starting with ``missing`` -> 404; prompt + requested max tokens over the context
   window -> 400;
5. ``rpm``/``tpm`` sliding window -> 429 with Retry-After = time until the request fits
   (only admitted requests count);
6. one seeded draw for injected failures (timeout, 429, 500, 503, 529, malformed), and one
   hash draw for content faults (refusal, invalid JSON: ``SimState.content_fault``);
7. ``max_concurrency`` gate (queue: wait for a slot; reject: 429);
8. latency (+ jitter) sleep, then the injected outcome or the deterministic reply.

Every request's body is kept as received (``SimState.keep_body``) before it is judged, so
``GET /_sim/log?bodies=1`` shows rejected requests too. Every request is recorded once in the stats and log when its outcome is final (an injected
timeout is recorded as 504 *before* holding the connection for ``timeout_hold_s``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from simulator.config import ResolvedBehaviour
from simulator.hostile import STREAMED_MODES, hostile_reply, stream_hostile
from simulator.limits import DEFAULT_RPM
from simulator.providers.base import Dialect, Rendered, SimError
from simulator.state import SimState
from simulator.textgen import ChatRequest, Completion, complete, prompt_tokens_of

_BAD_JSON = "We could not parse the JSON body of your request."


@dataclass(slots=True)
class _Call:
    arrival: float
    request_id: str
    model: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    recorded: bool = False
    raw: bytes = b""
    fault: str | None = None
    beh: ResolvedBehaviour | None = None  # set once the model is known


_KEPT_HEADERS = ("anthropic-beta", "anthropic-version")


async def _read_json(state: SimState, request: web.Request, call: _Call) -> Any:
    raw = await request.read()
    kept = {h: request.headers[h] for h in _KEPT_HEADERS if h in request.headers}
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw[:65536].decode("utf-8", "replace")
        state.keep_body(call.request_id, {"path": request.path, "headers": kept, "raw": text})
        raise SimError(400, "invalid", _BAD_JSON) from None
    state.keep_body(call.request_id, {"path": request.path, "headers": kept, "body": body})
    call.raw = request.path.encode() + b"\x1f" + raw
    return body


def _check_model(chat: ChatRequest, beh: ResolvedBehaviour, prompt_tokens: int) -> None:
    if beh.down:
        raise SimError(503, "unavailable", ctx={"source": "down", "model": chat.model})
    if chat.model.startswith("missing"):
        raise SimError(404, "not_found", ctx={"model": chat.model})
    requested = chat.max_tokens or 0
    total = prompt_tokens + requested
    if total > beh.context_window:
        raise SimError(
            400,
            "context",
            ctx={
                "model": chat.model,
                "window": beh.context_window,
                "prompt_tokens": prompt_tokens,
                "max_tokens": requested,
                "total": total,
                "excess": total - beh.context_window,
            },
        )


def with_usage_classes(done: Completion, beh: ResolvedBehaviour, dialect: Dialect) -> Completion:
    """The completion with its usage classes (issue 19), as `dialect`'s provider reports them.

    Reasoning tokens are added to the completion (a thinking model writes them besides the
    visible text) whether or not the dialect reports them apart; cache reads and writes are a
    share of the prompt. A class the dialect does not report stays inside its total.
    """
    classes = dialect.usage_classes
    prompt = done.prompt_tokens
    cached = int(prompt * beh.cached_share) if "cached" in classes else 0
    write = min(int(prompt * beh.cache_write_share), prompt - cached)
    reasoning = int(done.completion_tokens * beh.reasoning_share)
    if not (cached or reasoning or (write and "cache_write" in classes)):
        return done
    return replace(
        done,
        completion_tokens=done.completion_tokens + reasoning,
        cached_tokens=cached,
        cache_write_tokens=write if "cache_write" in classes else 0,
        reasoning_tokens=reasoning if "reasoning" in classes else 0,
    )


def _rate_ctx(model: str, what: str, limit: int, used: int, wait: float) -> dict[str, Any]:
    return {
        "model": model,
        "what": what,
        "limit": limit,
        "used": used,
        "requested": 1,
        "wait": f"{wait:.3f}s",
    }


def _admit(
    state: SimState, dialect: Dialect, beh: ResolvedBehaviour, call: _Call, tokens: int
) -> None:
    now = time.monotonic()
    window = state.window(dialect.name, call.model, beh.model_limited)
    blocked = window.blocked(now, beh.rpm, beh.tpm, tokens)
    if blocked is None:
        window.admit(now, tokens)
    if dialect.rate_limit_headers:
        snap = window.snapshot(now, beh.rpm, beh.tpm)
        call.headers.update(dialect.rate_headers(snap, call.arrival))
    if blocked is not None:
        wait, what, limit = blocked
        used = window.used_requests() if what == "requests" else window.token_sum
        label = "requests per min (RPM)" if what == "requests" else "tokens per min (TPM)"
        ctx = _rate_ctx(call.model, label, limit, used, wait)
        ctx["requested"] = 1 if what == "requests" else tokens
        ctx["source"] = "rpm" if what == "requests" else "tpm"
        raise SimError(429, "rate_limit", retry_after=wait, ctx=ctx)


async def _outcome(
    state: SimState,
    dialect: Dialect,
    beh: ResolvedBehaviour,
    call: _Call,
    chat: ChatRequest,
    done: Completion,
    injected: tuple[int, str] | None,
) -> tuple[Rendered, tuple[int, ...] | None, str]:
    if injected is None:
        usage = done.billed
        kind = "ok"
        if done.refusal:
            kind = "refusal"
        elif call.fault == "invalid_json" and (done.is_json or done.tool_calls):
            kind = "invalid_json"
        return dialect.render(chat, done, call.request_id), usage, kind
    status, kind = injected
    if kind == "malformed":
        rendered = dialect.render(chat, done, call.request_id)
        rendered.body = rendered.body[: max(1, len(rendered.body) // 2)]
        return rendered, None, "malformed"
    if kind == "timeout":
        entry = (call.arrival, dialect.name, call.model, 504, None, "timeout", call.request_id)
        state.record(entry)
        call.recorded = True
        await asyncio.sleep(beh.timeout_hold_s)
        raise SimError(504, "timeout", ctx={"source": "timeout", "model": chat.model})
    retry = beh.retry_after_s if status == 429 else None
    limit = beh.rpm or DEFAULT_RPM
    ctx = _rate_ctx(chat.model, "requests per min (RPM)", limit, limit, beh.retry_after_s)
    ctx["source"] = "injected"
    raise SimError(status, kind, retry_after=retry, ctx=ctx)


async def _pipeline(
    state: SimState, dialect: Dialect, request: web.Request, call: _Call
) -> tuple[Rendered, tuple[int, ...] | None, str]:
    call.model = request.match_info.get("model", "")  # Google names the model in the path
    dialect.check_auth(request)
    chat = dialect.parse(await _read_json(state, request, call), request)
    call.model = chat.model
    state.note_features(call.request_id, chat.features.summary())
    beh = call.beh = state.resolved(dialect.name, chat.model)
    prompt_tokens = prompt_tokens_of(chat)
    _check_model(chat, beh, prompt_tokens)
    call.fault = state.content_fault(beh, call.raw)
    done = with_usage_classes(complete(chat, prompt_tokens, call.fault), beh, dialect)
    _admit(state, dialect, beh, call, done.total_tokens)
    injected = state.roll(beh)
    behaviour = state.config.behaviour(dialect.name)
    gate = None
    if behaviour.max_concurrency is not None:
        gate = state.gate(dialect.name, behaviour.max_concurrency)
        if behaviour.concurrency_mode == "reject" and gate.full():
            ctx = _rate_ctx(chat.model, "concurrent requests", gate.limit, gate.limit, 0)
            ctx["source"] = "concurrency"
            raise SimError(429, "rate_limit", retry_after=beh.retry_after_s, ctx=ctx)
        await gate.acquire()
    try:
        delay = state.jitter_s(beh)
        if delay > 0:
            await asyncio.sleep(delay)
        return await _outcome(state, dialect, beh, call, chat, done, injected)
    finally:
        if gate is not None:
            gate.release()


async def handle_chat(
    state: SimState, dialect: Dialect, request: web.Request
) -> web.StreamResponse:
    """Serve one chat request for ``dialect`` (see the module docstring for the order)."""
    call = _Call(time.time(), state.next_id())
    retry_after: float | None = None
    try:
        rendered, usage, kind = await _pipeline(state, dialect, request, call)
    except SimError as err:
        rendered = dialect.error(err, call.request_id)
        usage = None
        kind = err.ctx.get("source", err.kind)
        retry_after = err.retry_after
    mode = call.beh.hostile if call.beh is not None and rendered.status == 200 else None
    if mode is not None and call.beh is not None:  # issue 20: the hostile provider
        kind = f"hostile_{mode}"
        if mode in STREAMED_MODES:
            entry = (call.arrival, dialect.name, call.model, 200, None, kind, call.request_id)
            state.record(entry, usage)
            beh = call.beh
            size, drip = beh.hostile_body_bytes, beh.hostile_drip_s
            return await stream_hostile(mode, rendered, request, size, drip)
        rendered = hostile_reply(mode, rendered, request, dialect.request_id_header)
        retry_after = 999999999.0 if rendered.status == 429 else retry_after
    if not call.recorded:
        status = rendered.status
        entry = (call.arrival, dialect.name, call.model, status, retry_after, kind, call.request_id)
        state.record(entry, usage)
    headers = call.headers
    if rendered.headers:
        headers.update(rendered.headers)
    if dialect.request_id_header:
        headers.setdefault(dialect.request_id_header, "req_" + call.request_id)
    return web.Response(
        body=rendered.body,
        status=rendered.status,
        content_type=rendered.content_type,
        headers=headers,
    )
