"""The hostile provider (issue 20): replies that try every way a provider can hurt a client.

Owns: `HOSTILE_MODES` and `hostile_reply`, which turns the reply a request would have had
into the hostile one for a mode, configured like the other fault knobs (`hostile` on a
provider's or a model's behaviour; `hostile_body_bytes`, `hostile_drip_s` for the sizes and
pace). Only requests that would have succeeded are turned hostile (auth, validation, limits and
injected faults come first). Must not: know any dialect's wire format beyond field names that
carry a prompt-token count, which it rewrites wherever they appear in a JSON reply.

Modes and what they send:

    usage_absurd          200, every prompt-token count = 1e20
    usage_negative        200, prompt-token counts = -1000000
    usage_fraction        200, prompt-token counts = 1.5
    usage_string          200, prompt-token counts = "12"
    usage_huge            200, prompt-token counts = 10**12
    huge_body             200, a JSON body of `hostile_body_bytes` bytes, streamed
    slow_drip             200, the reply one whitespace byte at a time over `hostile_drip_s`
    html_error            502, a proxy's HTML error page
    error_in_200          200 whose body is an error envelope
    echo_key              401 whose message echoes every credential header, whole
    echo_key_partial      401 echoing each credential minus its last 3 characters, and its
                          first 12 characters alone
    echo_headers_500      500 echoing every non-standard request header, whole
    key_in_request_id     200 (normal body) with the request id header and `id` = the key
    retry_after_unbounded 429 with `retry-after: 999999999`
    invalid_utf8          200 whose text contains bytes that are not UTF-8
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, get_args

from aiohttp import web

from simulator.config import HostileMode
from simulator.providers.base import Rendered, dumps

HOSTILE_MODES: tuple[str, ...] = get_args(HostileMode)

_USAGE_VALUES: dict[str, Any] = {
    "usage_absurd": 1e20,
    "usage_negative": -1_000_000,
    "usage_fraction": 1.5,
    "usage_string": "12",
    "usage_huge": 10**12,
}
# Field names that carry a prompt-token count in the dialects' replies (any nesting depth).
_PROMPT_FIELDS = frozenset(
    {"prompt_tokens", "input_tokens", "promptTokenCount", "prompt_eval_count"}
)
# Request headers that are not credentials or custom headers.
_PLAIN_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "accept",
        "accept-encoding",
        "connection",
        "user-agent",
        "anthropic-version",
        "anthropic-beta",
    }
)
_HTML = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    b"<h1>502 Bad Gateway</h1><p>The upstream server returned an invalid response.</p>"
    b"<hr><address>nginx</address></body></html>"
)


def _rewrite(node: Any, value: Any) -> Any:
    if isinstance(node, dict):
        return {k: value if k in _PROMPT_FIELDS else _rewrite(v, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, value) for v in node]
    return node


def credentials(request: web.Request) -> list[str]:
    """Every header value that is a credential or a custom header (a bearer token without
    `Bearer `), plus a `key` query parameter: what a careless provider might echo."""
    found = []
    for name, value in request.headers.items():
        if name.lower() in _PLAIN_HEADERS:
            continue
        scheme, _, rest = value.partition(" ")
        found.append(rest.strip() if scheme.lower() == "bearer" and rest.strip() else value)
    if "key" in request.query:
        found.append(request.query["key"])
    return [v for v in found if v]


def _error(status: int, message: str, code: str = "hostile") -> Rendered:
    return Rendered(status, dumps({"error": {"message": message, "type": code, "code": code}}))


def hostile_reply(
    mode: str, normal: Rendered, request: web.Request, id_header: str | None = None
) -> Rendered:
    """The reply to send instead of `normal` (a successful reply) for `mode`; the streamed
    modes (`huge_body`, `slow_drip`) are sent by `stream_hostile`. `id_header`: the dialect's
    request id header."""
    if mode in _USAGE_VALUES:
        body = _rewrite(json.loads(normal.body), _USAGE_VALUES[mode])
        return Rendered(200, dumps(body), normal.content_type, dict(normal.headers))
    keys = credentials(request)
    if mode == "html_error":
        return Rendered(502, _HTML, "text/html")
    if mode == "error_in_200":
        return _error(200, "The server had an error while processing your request.", "server_error")
    if mode == "echo_key":
        return _error(401, f"Incorrect API key provided: {', '.join(keys)}.", "invalid_api_key")
    if mode == "echo_key_partial":
        parts = [f"{k[:-3]}..." for k in keys] + [k[:12] for k in keys]
        return _error(401, f"Key {' / '.join(parts)} is not valid.", "invalid_api_key")
    if mode == "echo_headers_500":
        return _error(500, f"upstream failed for request with headers {keys}", "server_error")
    if mode == "key_in_request_id":
        key = keys[0] if keys else "sk-none"
        body = json.loads(normal.body)
        if isinstance(body, dict) and "id" in body:
            body["id"] = key
        headers = {**normal.headers, id_header or "x-request-id": key}
        return Rendered(200, dumps(body), normal.content_type, headers)
    if mode == "retry_after_unbounded":
        rendered = _error(429, "Rate limit reached. Try again later.", "rate_limit_exceeded")
        rendered.headers["retry-after"] = "999999999"
        return rendered
    if mode == "invalid_utf8":
        text = normal.body.replace(b"sim:", b"sim:\xff\xfe\xc3(", 1)
        return Rendered(200, text, normal.content_type, dict(normal.headers))
    raise ValueError(f"unknown hostile mode {mode!r}; known: {list(HOSTILE_MODES)}")


async def stream_hostile(
    mode: str, normal: Rendered, request: web.Request, size: int, drip_s: float
) -> web.StreamResponse:
    """Send a huge body (`size` bytes, 1 MiB at a time, never held in memory) or a slow drip
    (one space per step for `drip_s` seconds, then the normal body)."""
    resp = web.StreamResponse(status=200, headers={"content-type": normal.content_type})
    await resp.prepare(request)
    try:
        if mode == "huge_body":
            head = b'{"padding":"'
            await resp.write(head)
            chunk = b"x" * (1 << 20)
            left = max(size - len(head), 0)
            while left > 0:
                await resp.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)
            await resp.write(b'"}')
        else:
            steps = max(int(drip_s / 0.2), 1)
            for _ in range(steps):
                await resp.write(b" ")
                await asyncio.sleep(0.2)
            await resp.write(normal.body)
        await resp.write_eof()
    except ConnectionError:  # includes aiohttp's "Connection lost"
        pass  # the client gave up, as it should
    return resp


STREAMED_MODES = frozenset({"huge_body", "slow_drip"})
