"""Shared machinery for the simulated providers' wire formats.

This module owns ``SimError`` (a provider-neutral error the pipeline raises, which each dialect
renders in its own envelope), ``RateSnapshot`` (the numbers behind rate-limit headers), and the
``Dialect`` base class that every provider module subclasses: auth check, request parsing into a
``ChatRequest``, success body, error body, and rate-limit headers.

Error kinds (``SimError.kind``) and their usual statuses: ``auth_missing``/``auth_bad`` 401,
``invalid`` 400, ``not_found`` 404, ``context`` 400, ``rate_limit`` 429, ``server`` 500,
``unavailable`` 503, ``overloaded`` 529 (Anthropic only; others send 503), ``timeout`` 504.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from simulator.textgen import ChatRequest, Completion

JSON = "application/json"


class SimError(Exception):
    """An HTTP error to be rendered in the provider's own envelope."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str = "",
        *,
        retry_after: float | None = None,
        ctx: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message or kind)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.ctx = ctx or {}


def invalid(message: str) -> SimError:
    """A 400 ``invalid`` error with ``message``."""
    return SimError(400, "invalid", message)


@dataclass(slots=True)
class RateSnapshot:
    """Rate-limit window state after admitting a request (for response headers)."""

    limit_requests: int
    remaining_requests: int
    reset_requests_s: float
    limit_tokens: int
    remaining_tokens: int
    reset_tokens_s: float


@dataclass(slots=True)
class Rendered:
    """A ready-to-send reply: status, body bytes, content type, extra headers."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def bearer_key(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>``, or ``None``."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def content_text(content: Any, where: str) -> str:
    """Text of a message ``content``: a string, or a list of blocks with ``text`` keys."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
            else:
                raise invalid(f"{where}: each content block must be an object")
        return "".join(parts)
    raise invalid(f"{where}: content must be a string or a list of content blocks")


def require_str(body: dict[str, Any], name: str) -> str:
    """A required non-empty string field."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"{name}: Field required" if value is None else f"{name}: must be a string")
    return value


def require_list(body: dict[str, Any], name: str) -> list[Any]:
    """A required non-empty list field."""
    value = body.get(name)
    if value is None:
        raise invalid(f"{name}: Field required")
    if not isinstance(value, list) or not value:
        raise invalid(f"{name}: must be a non-empty array")
    return value


def optional_max_tokens(value: Any, name: str) -> int | None:
    """Validate an optional max-tokens value (int >= 1)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name}: must be an integer")
    if value < 1:
        raise invalid(f"{name}: must be greater than or equal to 1")
    return value


def go_duration(seconds: float) -> str:
    """Go ``time.Duration.String()``-style text: ``12ms``, ``1s``, ``1.5s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    total_ms = round(seconds * 1000)
    if total_ms < 1000:
        return f"{max(1, total_ms)}ms"
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def seconds_text(seconds: float) -> str:
    """Seconds as ``"2"`` when whole, else up to millisecond precision (``"0.25"``)."""
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


class Dialect:
    """One provider's wire format. Subclasses override what differs.

    An instance serves one endpoint, named `name` (the provider key used in routes, behaviour,
    stats and the log): the dialect's own name by default, or the registered provider it
    serves, so one dialect may serve several providers (e.g. an OpenAI-compatible one).
    """

    name: ClassVar[str] = ""
    base_path: ClassVar[str] = ""  # api_base = {url}/{name}{base_path}
    chat_path: ClassVar[str] = ""  # the chat route below /{name}
    alias_paths: ClassVar[tuple[str, ...]] = ()  # more routes below /{name}, same handler
    request_id_header: ClassVar[str | None] = "x-request-id"
    auth_required: ClassVar[bool] = True
    retry_after_headers: ClassVar[bool] = True
    rate_limit_headers: ClassVar[bool] = False
    overloaded_status: ClassVar[int] = 503
    messages: ClassVar[dict[str, str]] = {}
    # issue 19: the usage classes this wire format reports apart ("cached", "cache_write",
    # "reasoning"); the others stay inside their totals, as the provider bills them
    usage_classes: ClassVar[frozenset[str]] = frozenset()
    # the provider's usage/cost report routes below /{name}: path -> (window parser, renderer),
    # served from the simulator's billing (simulator/providers/usage_api.py)
    report_routes: ClassVar[Mapping[str, tuple[Any, Any]]] = {}

    def __init__(self, name: str | None = None) -> None:
        if name:
            self.name = name  # type: ignore[misc]  # serves a provider under its own name

    def check_auth(self, request: web.Request) -> None:
        """Raise ``SimError`` 401 if the key is missing (when required) or starts with ``bad``."""
        key = bearer_key(request)
        self.judge_key(key)

    def judge_key(self, key: str | None) -> None:
        """Common missing/bad key rule."""
        if key is None:
            if self.auth_required:
                raise SimError(401, "auth_missing")
            return
        if key.startswith("bad"):
            raise SimError(401, "auth_bad", ctx={"key": key})

    def parse(self, body: Any, request: web.Request) -> ChatRequest:
        """Validate the request body; return the provider-neutral request."""
        raise NotImplementedError

    def render(self, chat: ChatRequest, done: Completion, request_id: str) -> Rendered:
        """The 200 reply."""
        raise NotImplementedError

    def error_body(self, err: SimError, message: str, request_id: str) -> Any:
        """The provider's error envelope (a JSON-able object)."""
        raise NotImplementedError

    def rate_headers(self, snap: RateSnapshot, now: float) -> dict[str, str]:
        """Rate-limit headers for a reply (none by default)."""
        return {}

    def message_for(self, err: SimError) -> str:
        """The human message: explicit, else this dialect's template for the kind."""
        if err.message:
            return err.message
        template = self.messages.get(err.kind) or DEFAULT_MESSAGES.get(err.kind, err.kind)
        try:
            return template.format(**err.ctx)
        except (KeyError, IndexError, ValueError):
            return template

    def error(self, err: SimError, request_id: str) -> Rendered:
        """Render ``err`` as a full reply (status, envelope, Retry-After headers)."""
        status = err.status
        if err.kind == "overloaded":
            status = self.overloaded_status
        err.status = status
        body = dumps(self.error_body(err, self.message_for(err), request_id))
        headers: dict[str, str] = {}
        if err.retry_after is not None and self.retry_after_headers:
            headers["retry-after"] = seconds_text(err.retry_after)
            headers["retry-after-ms"] = str(round(err.retry_after * 1000))
        return Rendered(status=status, body=body, headers=headers)


DEFAULT_MESSAGES: dict[str, str] = {
    "auth_missing": "Missing API key.",
    "auth_bad": "Invalid API key.",
    "invalid": "Invalid request.",
    "not_found": "model '{model}' not found",
    "context": (
        "This model's maximum context length is {window} tokens. However, you requested "
        "{total} tokens ({prompt_tokens} in the messages, {max_tokens} in the completion)."
    ),
    "rate_limit": "Rate limit reached for {what}: limit {limit}. Please try again in {wait}.",
    "server": "The server had an error while processing your request.",
    "unavailable": "The service is temporarily unavailable. Please try again later.",
    "overloaded": "Overloaded",
    "timeout": "Request timed out.",
}
