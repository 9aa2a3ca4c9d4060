"""HTTP plumbing shared by every adapter: the client factory, the transport-error translator
and parsers for the headers providers use to talk about time.

Owns: `make_client`, `translate_transport_errors` (httpx exceptions -> our error tree, the one
place that happens), `retry_after_s` (retry-after-ms / retry-after), `go_duration_s` (OpenAI's
`6m0s` resets), `until_s` (Anthropic's RFC 3339 resets) and `header_int`.
Must not: know a provider's body format, log request bodies, or ever see an API key in a
message it builds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx

from core.errors import ModelUnavailable, ProviderTimeout, ProviderUnavailable

CONNECT_TIMEOUT_S = 10.0


def make_client(max_connections: int = 64, timeout_s: float = 120) -> httpx.Client:
    """One thread-safe pooled client per process; adapters share it.

    Parameters:
        max_connections: pool size across all providers (keep-alive connections are reused).
        timeout_s: read/write/pool timeout in seconds; connecting gets at most 10 s.
    """
    return httpx.Client(
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        ),
        timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
        follow_redirects=False,  # a redirect would resend the key to wherever it points
    )


@contextmanager
def translate_transport_errors(provider: str, model: str, **fields: object) -> Iterator[None]:
    """Turn httpx transport failures into `LLMProviderError` subclasses, chained.

    Connect failures mean "not reachable now" (transient, maybe elsewhere); a read that took
    too long is a timeout; a URL we cannot even send to is a deployment that cannot serve.
    """
    base = {"provider": provider, "model": model, **fields}
    try:
        yield
    except httpx.ConnectTimeout as exc:
        raise ProviderUnavailable(f"{provider}: connect timed out", **base) from exc
    except httpx.TimeoutException as exc:
        raise ProviderTimeout(
            f"{provider}: request timed out ({type(exc).__name__})", **base
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ModelUnavailable(f"{provider}: cannot send to this URL: {exc}", **base) from exc
    except httpx.TransportError as exc:
        raise ProviderUnavailable(f"{provider}: {type(exc).__name__}: {exc}", **base) from exc


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if number == number and number >= 0 else None  # drop NaN / negatives


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms` first, then `retry-after`
    (seconds, possibly fractional, or an HTTP date). None when absent or unreadable."""
    ms = _float(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _float(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_s(text: str | None) -> float | None:
    """Go `time.Duration` text (`12ms`, `1.5s`, `6m0s`, `1h2m3s`) in seconds."""
    if not text:
        return None
    text = text.strip()
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return _float(text)  # some proxies send plain seconds
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def until_s(rfc3339: str | None, now: float | None = None) -> float | None:
    """Seconds from now until an RFC 3339 instant (never negative)."""
    if not rfc3339:
        return None
    try:
        when = datetime.fromisoformat(rfc3339.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = _float(headers.get(name))
    return int(value) if value is not None else None
