"""The asyncio twin of `ProviderAdapter.complete()`, over aiohttp (issue 21: the chunk hot path
runs a chunk's provider calls concurrently on one event loop; aiohttp costs about a tenth of the
CPU per call of httpx.AsyncClient on this box).

Owns: `make_async_session` (the pooled aiohttp session) and `complete_async`, which sends the
request the adapter built, reads the reply within `max_reply_bytes` and `timeout_s` exactly as
bounded.py's `send_bounded` does, and translates aiohttp's transport errors as http.py's
`translate_transport_errors` translates httpx's.
Must not: parse or classify a reply itself (the adapter's `check_status` and `read_reply` do, so
both paths give the same reply or the same error), follow a redirect (it would resend the key),
serve an adapter with a rotating key pool (its per-thread key choice lives in the sync path),
or put a key into a message.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from core.errors import (
    MalformedReply,
    ModelUnavailable,
    ProviderTimeout,
    ProviderUnavailable,
)
from workers.providers.base import ProviderAdapter

# The sync reader's own size check, error text and header hygiene: one wording for both paths.
from workers.providers.bounded import _DROPPED_HEADERS, _too_large
from workers.providers.http import CONNECT_TIMEOUT_S
from workers.providers.values import ProviderReply, ProviderRequest

KEEPALIVE_S = 30.0  # as make_client's keepalive_expiry
# Headers aiohttp sets itself from the URL and the body; sending httpx's copies would duplicate.
_NOT_FORWARDED = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_DROPPED_RAW = frozenset(name.encode() for name in _DROPPED_HEADERS)
# aiohttp's timeout classes named as httpx names them, so both paths word a timeout alike.
_HTTPX_NAMES = {aiohttp.SocketTimeoutError: "ReadTimeout"}


def make_async_session(max_connections: int = 64) -> aiohttp.ClientSession:
    """One pooled session per event loop; `complete_async` calls share it.

    Call it inside the running loop that will use it (aiohttp binds the session and its
    connector to that loop) and close it there: `await session.close()`.

    Parameters:
        max_connections: pool size across all providers (keep-alive connections, 30 s idle,
            are reused); a call beyond it waits for a free connection.
    """
    asyncio.get_running_loop()  # fail here, clearly, rather than inside aiohttp later
    connector = aiohttp.TCPConnector(
        limit=max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Bodies are decoded by httpx's decoders in `_decoded`, as on the sync path, so a
        # gzip bomb is counted chunk by chunk and every encoding behaves the same.
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # a provider's cookie must not follow other calls
        trust_env=False,  # no proxy or netrc from the environment, as make_client
        timeout=aiohttp.ClientTimeout(total=None),  # per call: see `_timeout`
    )


async def complete_async(
    adapter: ProviderAdapter, req: ProviderRequest, session: aiohttp.ClientSession
) -> ProviderReply:
    """Send one request on `session`; the reply or the `LLMProviderError` that
    `adapter.complete(req)` would give (a transport error's wording may differ).

    Raises ValueError for an adapter with a rotating key pool: route those to the sync path.
    """
    if adapter.keys:
        raise ValueError(
            f"{adapter.name} ({adapter.model_id}): a rotating key pool needs adapter.complete()"
        )
    request = adapter.build_request(req)
    started = time.perf_counter()
    with _translated(adapter):
        resp = await _read_bounded(adapter, session, request)
    latency_ms = round((time.perf_counter() - started) * 1000)
    adapter.check_status(resp)
    return adapter.read_reply(req, resp, latency_ms)


@functools.lru_cache(maxsize=64)  # one per distinct timeout_s, not one per call
def _timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """httpx.Timeout(timeout_s, connect=min(10, timeout_s)) in aiohttp's terms: each socket
    connect and read within its limit; waiting for a pooled connection (aiohttp's `connect`)
    within `timeout_s`, like httpx's pool timeout."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeout_s,
        sock_connect=min(CONNECT_TIMEOUT_S, timeout_s),
        sock_read=timeout_s,
    )


class _Body(httpx.AsyncByteStream):
    """aiohttp's raw (still encoded) body as an httpx stream, for httpx's decoders."""

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._raw.content.iter_any():
            yield chunk


def _declared_length(raw: aiohttp.ClientResponse) -> int | None:
    """Content-Length as bounded.py reads it (several values joined, so unreadable: None)."""
    try:
        return int(", ".join(raw.headers.getall("content-length", ())))
    except ValueError:
        return None


async def _read_bounded(
    adapter: ProviderAdapter, session: aiohttp.ClientSession, request: httpx.Request
) -> httpx.Response:
    """`send_bounded` on aiohttp: the reply, read whole within `max_reply_bytes` (decoded) and
    `timeout_s` after the headers, as an ordinary `httpx.Response` of the decoded body."""
    settings, fields = adapter.target.provider, adapter._fields
    max_bytes, deadline_s = settings.max_reply_bytes, settings.timeout_s
    headers = [(k, v) for k, v in request.headers.multi_items() if k not in _NOT_FORWARDED]
    raw = await session.request(
        request.method,
        URL(str(request.url), encoded=True),  # as built: no re-quoting of `:` or `%`
        headers=headers,
        data=request.content,
        allow_redirects=False,
        timeout=_timeout(deadline_s),
    )
    started = time.monotonic()  # the deadline is for the body, once the headers are in
    try:
        status = raw.status
        declared = _declared_length(raw)
        if declared is not None and declared > max_bytes:
            raise _too_large(fields, status, f"declares {declared} bytes", max_bytes)
        chunks: list[bytes] = []
        size = 0
        async for chunk in _decoded(raw, fields):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(fields, status, f"passed {max_bytes} bytes", max_bytes)
            chunks.append(chunk)
            if time.monotonic() - started > deadline_s:
                raise ProviderTimeout(
                    f"{fields.get('provider')}: reply still arriving after {deadline_s:g}s "
                    f"({size} bytes read)",
                    **fields,
                    status=status,
                )
    except BaseException:
        raw.close()  # drop the connection: the rest of the body is never read
        raise
    raw.release()  # the body was read to its end: the connection goes back to the pool
    kept = [(k, v) for k, v in raw.raw_headers if k.lower() not in _DROPPED_RAW]
    return httpx.Response(
        status,
        headers=kept,
        content=b"".join(chunks),
        request=request,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": (raw.reason or "").encode()},
    )


async def _decoded(raw: aiohttp.ClientResponse, fields: dict[str, object]) -> AsyncIterator[bytes]:
    """The body's decoded chunks; a body its content-encoding cannot decode is malformed.
    Decoding is httpx's (as on the sync path); a body without an encoding skips its machinery,
    which would only pass the chunks through at a cost (~0.2 ms CPU a call on the bench box)."""
    if "content-encoding" not in raw.headers:
        async for chunk in raw.content.iter_any():
            yield chunk
        return
    streamed = httpx.Response(raw.status, headers=raw.raw_headers, stream=_Body(raw))
    try:
        async for chunk in streamed.aiter_bytes():
            yield chunk
    except httpx.DecodingError as exc:
        raise MalformedReply(
            f"{fields.get('provider')}: malformed reply: body cannot be decoded ({exc})",
            **fields,
            status=raw.status,
        ) from exc


@contextmanager
def _translated(adapter: ProviderAdapter) -> Iterator[None]:
    """aiohttp's transport failures as `LLMProviderError`s, chained, mapped as
    `translate_transport_errors` maps httpx's: connect failures are "not reachable now", a read
    that took too long is a timeout, a URL we cannot send to is a deployment that cannot serve.
    Their text passes `adapter.redact` (a URL or a peer's words may carry a key)."""
    fields, provider = adapter._fields, adapter.name
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise ProviderUnavailable(f"{provider}: connect timed out", **fields) from exc
    except TimeoutError as exc:  # aiohttp.SocketTimeoutError: no byte within timeout_s
        name = _HTTPX_NAMES.get(type(exc), type(exc).__name__)
        raise ProviderTimeout(f"{provider}: request timed out ({name})", **fields) from exc
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        why = adapter.redact(f"{provider}: cannot send to this URL: {exc}")
        raise ModelUnavailable(why, **fields) from exc
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, DNS
        why = adapter.redact(f"{provider}: ConnectError: {exc}")
        raise ProviderUnavailable(why, **fields) from exc
    except aiohttp.ClientResponseError as exc:  # a reply that is not HTTP
        _forget_request_headers(exc)
        why = adapter.redact(f"{provider}: RemoteProtocolError: {exc.message}")
        raise ProviderUnavailable(why, **fields) from exc
    except aiohttp.ClientError as exc:  # disconnects, truncated bodies
        why = adapter.redact(f"{provider}: {type(exc).__name__}: {exc}")
        raise ProviderUnavailable(why, **fields) from exc


def _forget_request_headers(exc: aiohttp.ClientResponseError) -> None:
    """Drop the request's headers (the key among them) from an error we chain: aiohttp's repr
    of it prints them, and a traceback viewer or error tracker may show that repr."""
    info = exc.request_info
    exc.request_info = aiohttp.RequestInfo(
        info.url, info.method, CIMultiDictProxy(CIMultiDict()), info.real_url
    )
