"""Reading a provider's reply without trusting its size or its pace (issue 20).

Owns: `send_bounded`, which sends one request streamed and reads the body up to a byte limit
and a wall-clock deadline, returning an ordinary, fully read `httpx.Response`. Must not: parse
bodies, classify statuses, or hold more than `max_bytes` of a body in memory.

- Over `max_bytes` (decoded, so a gzip bomb counts what it inflates to): `ReplyTooLarge`, after
  reading at most the limit (a declared Content-Length over it fails before reading anything).
- A body its content-encoding cannot decode: `MalformedReply`.
- Slower than `deadline_s` in total (a slow drip of bytes that each beat the read timeout):
  `ProviderTimeout`.
Transport errors are left to the caller's `translate_transport_errors()`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx

from core.errors import MalformedReply, ProviderTimeout, ReplyTooLarge

# The body is decoded here; the rebuilt response must not decode it again or trust old sizes.
_DROPPED_HEADERS = ("content-encoding", "content-length", "transfer-encoding")


def _declared_length(resp: httpx.Response) -> int | None:
    try:
        return int(resp.headers.get("content-length", ""))
    except ValueError:
        return None


def send_bounded(
    client: httpx.Client,
    request: httpx.Request,
    max_bytes: int,
    deadline_s: float,
    **fields: object,
) -> httpx.Response:
    """Send `request` and read its body within `max_bytes` (bytes) and `deadline_s` (seconds
    after the headers arrived); `fields` (provider, model, deployment) go on the error raised."""
    resp = client.send(request, stream=True)
    started = time.monotonic()  # the deadline is for the body, once the headers are in
    try:
        declared = _declared_length(resp)
        status = resp.status_code
        if declared is not None and declared > max_bytes:
            raise _too_large(fields, status, f"declares {declared} bytes", max_bytes)
        chunks: list[bytes] = []
        size = 0
        for chunk in _decoded(resp, fields):
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
    finally:
        resp.close()
    headers = [(k, v) for k, v in resp.headers.multi_items() if k not in _DROPPED_HEADERS]
    return httpx.Response(
        status,
        headers=headers,
        content=b"".join(chunks),
        request=request,
        extensions=resp.extensions,
    )


def _decoded(resp: httpx.Response, fields: dict[str, object]) -> Iterator[bytes]:
    """The body's decoded chunks; a body its content-encoding cannot decode is malformed."""
    try:
        yield from resp.iter_bytes()
    except httpx.DecodingError as exc:
        raise MalformedReply(
            f"{fields.get('provider')}: malformed reply: body cannot be decoded ({exc})",
            **fields,
            status=resp.status_code,
        ) from exc


def _too_large(fields: dict[str, object], status: int, what: str, limit: int) -> ReplyTooLarge:
    return ReplyTooLarge(
        f"{fields.get('provider')}: reply too large (HTTP {status}, {what}; "
        f"the limit is {limit} bytes, providers.<name>.max_reply_bytes)",
        **fields,
        status=status,
    )
