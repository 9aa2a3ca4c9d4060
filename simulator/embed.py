"""The provider-independent pipeline behind every simulated embedding endpoint (issue 17).

Owns `handle_embed` and `embed_routes`. The order, as for chat (`simulator/engine.py`): auth
(the chat dialect's rule) -> 401; body (the embedding wire) -> 400; more inputs than the
provider takes in one request -> 400; behaviour `down` -> 503; a model starting with
``missing`` -> 404; the ``rpm``/``tpm`` window -> 429; one seeded draw for injected failures
(timeout, 429, 500, 503, 529, malformed); latency; then the deterministic vectors. Errors are
rendered in the chat dialect's envelope. Must not: know a provider's wire format
(`simulator/providers/embeddings.py`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator.engine import _admit, _Call, _read_json
from simulator.providers.base import Dialect, Rendered, SimError, dumps
from simulator.providers.embeddings import EMBED_WIRES, EmbedCall, EmbedWire, tokens_of, vector
from simulator.state import SimState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def embed_routes(name: str, dialect: Dialect) -> tuple[EmbedWire, str] | None:
    """(the wire, the route) of an endpoint's embeddings, or None when its dialect has none."""
    wire = EMBED_WIRES.get(type(dialect).name)
    return None if wire is None else (wire, f"/{name}{wire.path}")


def _vectors(call: EmbedCall, wire: EmbedWire) -> list[list[float]]:
    dims = call.dimensions or wire.default_dims
    return [vector(call.model, text, dims) for text in call.texts]


async def _pipeline(
    state: SimState, dialect: Dialect, wire: EmbedWire, request: web.Request, call: _Call
) -> tuple[Rendered, tuple[int, int] | None, str]:
    call.model = request.match_info.get("model", "")
    dialect.check_auth(request)
    body = await _read_json(state, request, call)
    embed = wire.parse(body, dict(request.match_info))
    call.model = embed.model
    wire.check_limit(embed)
    beh = call.beh = state.resolved(dialect.name, embed.model)
    if beh.down:
        raise SimError(503, "unavailable", ctx={"source": "down", "model": embed.model})
    if embed.model.startswith("missing"):
        raise SimError(404, "not_found", ctx={"model": embed.model})
    tokens = tokens_of(embed.texts)
    _admit(state, dialect, beh, call, tokens)
    injected = state.roll(beh)
    delay = state.jitter_s(beh)
    if delay > 0:
        await asyncio.sleep(delay)
    reply: Any = wire.render(embed, _vectors(embed, wire), call.request_id)
    rendered = Rendered(200, dumps(reply))
    if injected is None:
        return rendered, (tokens, 0), "ok"
    status, kind = injected
    if kind == "malformed":
        rendered.body = rendered.body[: max(1, len(rendered.body) // 2)]
        return rendered, None, "malformed"
    if kind == "timeout":
        await asyncio.sleep(beh.timeout_hold_s)
    retry = beh.retry_after_s if status == 429 else None
    raise SimError(status, kind, retry_after=retry, ctx={"source": "injected", "model": call.model,
                   "what": "requests", "limit": 0, "used": 0, "wait": "0s"})  # fmt: skip


def embed_handler(state_key: Any, dialect: Dialect, wire: EmbedWire) -> Handler:
    """The aiohttp handler of one endpoint's embedding route."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state: SimState = request.app[state_key]
        call = _Call(time.time(), state.next_id())
        retry_after: float | None = None
        try:
            rendered, usage, kind = await _pipeline(state, dialect, wire, request, call)
        except SimError as err:
            rendered = dialect.error(err, call.request_id)
            usage, kind, retry_after = None, err.ctx.get("source", err.kind), err.retry_after
        except (ValueError, json.JSONDecodeError):
            rendered = dialect.error(SimError(400, "invalid"), call.request_id)
            usage, kind = None, "invalid"
        entry = (call.arrival, dialect.name, call.model, rendered.status, retry_after, kind,
                 call.request_id)  # fmt: skip
        state.record(entry, usage)
        headers = {**call.headers, **rendered.headers}
        if dialect.request_id_header:
            headers.setdefault(dialect.request_id_header, "req_" + call.request_id)
        return web.Response(
            body=rendered.body,
            status=rendered.status,
            content_type=rendered.content_type,
            headers=headers,
        )

    handler.__name__ = f"embed_{dialect.name}"
    return handler
