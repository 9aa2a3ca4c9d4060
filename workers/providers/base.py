"""The adapter interface every provider module implements.

Owns: the `ProviderAdapter` base class whose `exchange()` is the only sync I/O path to a provider
(`complete()` and `embed()` use it; async_send.py is the asyncio twin, sharing `check_status`
and `read_reply`): send, then classify (non-2xx) or parse (2xx), timing it; the neutral
half of error classification (status, body markers, a per-provider `refine` hook).
Must not: know any provider's wire format, touch the ledger, Redis or the clock beyond
timing, or put an API key into anything it returns.

The values it exchanges live in values.py and are re-exported here.

Contract for subclasses: the provider's facts as class attributes (`name`, `env_keys`,
`default_base_url`, `retired_bases`, `genai_prices_id`, `simulator_dialect`, `chat_path`,
`capabilities`), read through `REGISTRY`, and pure methods: `build_request` (refusing what the
deployment cannot honour), `parse_reply` (small pydantic reply models), `refine` (optional).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from core.errors import (
    AuthFailed,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    InsufficientCredit,
    LLMProviderError,
    MalformedReply,
    RateLimited,
)
from core.secrets_scrub import header_secrets, register_secrets, scrub
from schemas.config import LLMModelConfig, ProviderSettings
from schemas.job import Usage
from schemas.request import Feature, ToolCall, required_features
from workers.providers.bounded import send_bounded
from workers.providers.classify import (
    CONTEXT_MARKERS,
    CREDIT_MARKERS,
    FILTER_MARKERS,
    ErrorDetails,
    error_details,
    matches,
    status_class,
)
from workers.providers.features import with_overrides
from workers.providers.http import CONNECT_TIMEOUT_S, retry_after_s, translate_transport_errors
from workers.providers.keys import Key
from workers.providers.values import AdapterTarget, ProviderReply, ProviderRequest, RateLimitInfo
from workers.retry import cap_retry_after

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 500  # characters of the provider's message kept in our exception
T = TypeVar("T")


def _why(exc: Exception) -> str:
    """One line saying why a 2xx reply could not be read (a reply model's first complaint)."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"{where}: {first['msg']}"
    return f"{type(exc).__name__}: {exc}"


def estimated_usage(req: ProviderRequest, text: str) -> Usage:
    """A rough count (4 bytes a token) when the provider reported none."""
    prompt = sum((len(m.text.encode()) + 3) // 4 + 3 for m in req.messages)
    if req.system:
        prompt += (len(req.system.encode()) + 3) // 4 + 3
    completion = (len(text.encode()) + 3) // 4
    return Usage(prompt_tokens=prompt, completion_tokens=completion, estimated=True)


class ProviderAdapter:
    """Base class: subclasses set the class attributes and the pure methods. What does not
    change per call (base URL, headers, timeout) is computed once in `__init__`, so an
    adapter is cheap to call and safe to share between threads."""

    # ---- the provider's facts (read through REGISTRY by config, pricing, embedded, simulator)
    name: ClassVar[str]  # as written in llm_config.yaml; an `LLMProvider` for the shipped six
    env_keys: ClassVar[tuple[str, ...]] = ()  # env / .env names of the key, first found wins
    default_base_url: ClassVar[str]  # api_base when the config gives none
    retired_bases: ClassVar[Mapping[str, str]] = {}  # retired host -> the base replacing it
    genai_prices_id: ClassVar[str | None] = None  # genai-prices provider id; None = unpriced
    simulator_dialect: ClassVar[str]  # the `simulator.providers` dialect that answers it
    dialect: ClassVar[str | None] = None  # the `providers.<name>.dialect` that picks this class
    variants: ClassVar[tuple[type[ProviderAdapter], ...]] = ()  # other dialects' classes
    requires_key: ClassVar[bool] = True
    batch_api: ClassVar[str | None] = None  # issue 18: its batch API (workers/providers/batch.py)
    # ---- wire details
    chat_path: ClassVar[str] = "/chat/completions"
    request_id_header: ClassVar[str | None] = "x-request-id"
    finish_reasons: ClassVar[Mapping[str, str]] = {}
    capabilities: ClassVar[frozenset[Feature]] = frozenset()  # built-in; see capabilities_for

    def __init__(self, target: AdapterTarget, client: httpx.Client) -> None:
        self.target = target
        self.client = client
        self.model_id = target.deployment.model_id or target.deployment.name
        self.base_url = self.resolve_base_url()
        self.keys = target.keys
        self._local = threading.local()  # the key of the call this thread is making
        configured = {**target.provider.headers, **target.extra}
        register_secrets([*header_secrets(configured), *([self.key()] if self.key() else [])])
        self.headers = {
            "content-type": "application/json",
            **self.auth_headers(),
            **target.provider.headers,
            **target.extra,
        }
        timeout_s = target.provider.timeout_s
        self.max_wait_s = target.provider.max_retry_after_s  # longest Retry-After honoured
        self.timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        self.honours = with_overrides(
            type(self).capabilities_for(target.deployment), target.deployment.capabilities
        )
        self._fields = {
            "provider": str(self.name),
            "model": self.model_id,
            "deployment": target.deployment.deployment_id,
        }

    @classmethod
    def for_target(cls, target: AdapterTarget, client: httpx.Client) -> ProviderAdapter:
        """The adapter for this target (a provider module may pick a dialect subclass)."""
        return cls.variant(target.provider)(target, client)

    @classmethod
    def variant(cls, settings: ProviderSettings) -> type[ProviderAdapter]:
        """The class that speaks to a provider with these settings: the one of `variants`
        whose `dialect` the settings name, else this one."""
        chosen = settings.dialect
        return next((v for v in cls.variants if chosen and v.dialect == chosen), cls)

    @classmethod
    def capabilities_for(cls, deployment: LLMModelConfig) -> frozenset[Feature]:
        """Built-in capabilities for this deployment (before its `capabilities` overrides);
        a provider whose models differ overrides this and looks at the model id."""
        return cls.capabilities

    @classmethod
    def upgraded_base(cls, url: str) -> str | None:
        """The replacement for a retired base URL, or None when `url` is not retired."""
        return cls.retired_bases.get(urlsplit(url).hostname or "")

    @classmethod
    def genai_ref(cls, model_id: str) -> tuple[str, str] | None:
        """(genai-prices provider id, model ref) for one of this provider's models, or None."""
        return (cls.genai_prices_id, model_id) if cls.genai_prices_id else None

    # ---- overridable, pure ------------------------------------------------------------------

    def resolve_base_url(self) -> str:
        base = self.target.deployment.api_url or self.target.provider.api_base
        base = (base or self.default_base_url).rstrip("/")
        upgraded = self.upgraded_base(base)
        if upgraded is None:
            return base
        log.warning(
            "%s api_base %s is retired; using %s instead. "
            "Set `providers.%s.api_base: %s` in llm_config.yaml.",
            *(self.name, base, upgraded, self.name, upgraded),
        )
        return upgraded

    def auth_headers(self) -> dict[str, str]:
        key = self.key()
        return {"authorization": f"Bearer {key}"} if key else {}

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        raise NotImplementedError

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        raise NotImplementedError

    def rate_limits(self, headers: httpx.Headers) -> RateLimitInfo | None:
        return None

    def refine(
        self, cls: type[LLMProviderError], status: int, details: ErrorDetails, body: Any
    ) -> type[LLMProviderError]:
        """Provider-specific reclassification by body markers (status already decided `cls`)."""
        return cls

    def error_retry_after(self, resp: httpx.Response, body: Any) -> float | None:
        return retry_after_s(resp.headers)

    # ---- shared helpers -----------------------------------------------------------------------

    def require(self, req: ProviderRequest) -> None:
        """Refuse (BadRequest) a request needing a feature this deployment cannot honour:
        routing should have skipped it; dropping the feature silently is never an option."""
        missing = sorted(required_features(req.features, req.messages) - self.honours)
        if missing:
            raise self.refuse(f"cannot honour {', '.join(missing)}")

    def refuse(self, why: str) -> BadRequest:
        """A request this adapter will not send, as the error a provider 400 would give."""
        return BadRequest(f"{self.name} ({self.model_id}): {why}", **self._fields)

    def key(self) -> str | None:
        current: Key | None = getattr(self._local, "key", None)
        if current is not None:
            return current.value
        return self.target.api_key.get_secret_value() if self.target.api_key else None

    def post(self, url: str, body: dict[str, Any]) -> httpx.Request:
        headers = self.headers
        if getattr(self._local, "key", None) is not None:  # a rotating pool: this call's key
            extra = {**self.target.provider.headers, **self.target.extra}
            headers = {"content-type": "application/json", **self.auth_headers(), **extra}
        return self.client.build_request(
            "POST", url, json=body, headers=headers, timeout=self.timeout
        )

    def finish(self, raw: Any) -> str | None:
        ok = isinstance(raw, str) and raw
        return self.finish_reasons.get(raw, raw.lower()) if ok else None

    def request_id(self, resp: httpx.Response) -> str | None:
        """The reply's request id, scrubbed: a hostile provider may echo a key in it."""
        found = resp.headers.get(self.request_id_header) if self.request_id_header else None
        return scrub(found)[:200] if found else None

    def redact(self, text: str) -> str:
        """Never let a secret travel in a message (some providers echo keys and headers back),
        whole or in part: scrubbed of every registered secret, then cut to length."""
        key = self.key()
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return scrub(text)[:MAX_ERROR_MESSAGE]

    def classify_error(self, resp: httpx.Response) -> LLMProviderError:
        """A non-2xx reply as an `LLMProviderError`: status first, body markers second."""
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        details = error_details(body, resp.text)
        if details.message == "(empty body)" and resp.headers.get("x-error-message"):
            details = ErrorDetails(
                resp.headers["x-error-message"], resp.headers.get("x-error-code")
            )
        status = resp.status_code
        cls = status_class(status)
        if cls is BadRequest and matches(details, CONTEXT_MARKERS):
            cls = ContextTooLong
        elif cls is BadRequest and matches(details, FILTER_MARKERS):
            cls = ContentFiltered
        elif cls in (RateLimited, BadRequest, AuthFailed) and matches(details, CREDIT_MARKERS):
            cls = InsufficientCredit
        cls = self.refine(cls, status, details, body)
        return cls(
            self.redact(f"{self.name} HTTP {status}: {details.message}"),
            **self._fields,
            status=status,
            retry_after=cap_retry_after(self.error_retry_after(resp, body), self.max_wait_s),
            request_id=self.request_id(resp),
            code=details.code,
        )

    def malformed(self, why: str, resp: httpx.Response) -> MalformedReply:
        return MalformedReply(
            self.redact(f"{self.name}: malformed reply: {why}"),
            **self._fields,
            status=resp.status_code,
            request_id=self.request_id(resp),
        )

    # ---- the one I/O path ----------------------------------------------------------------------

    def complete(self, req: ProviderRequest, key_fp: str | None = None) -> ProviderReply:
        """Send one request; return the parsed reply or raise an `LLMProviderError`."""
        return self.with_key(lambda: self._send(req), key_fp)

    def with_key(self, call: Callable[[], T], key_fp: str | None = None) -> T:
        """Run `call` (this adapter's sends). With a rotating key pool it uses the key
        admission chose (`key_fp`, its fingerprint: the key whose rate-limit bucket holds the
        slot), else the next key; a key answering 401/403 leaves the pool and `call` runs
        again with the next one, until none is left."""
        if not self.keys:
            return call()
        pinned = self.keys.get(key_fp) if key_fp else None
        while True:
            key, pinned = pinned or self.keys.take(), None
            if key is None:
                raise AuthFailed(
                    f"{self.name}: every configured key was refused (401/403)",
                    **self._fields,
                    status=401,
                )
            self._local.key = key
            try:
                return call()
            except AuthFailed as exc:
                if exc.status not in (401, 403) or not self.keys.revoke(key, exc.status):
                    raise
            finally:
                self._local.key = None

    def exchange(self, request: httpx.Request) -> tuple[httpx.Response, int]:
        """Send one built request (bounded read); (2xx response, latency ms) or the error."""
        started = time.perf_counter()
        limits = (self.target.provider.max_reply_bytes, self.target.provider.timeout_s)
        with translate_transport_errors(**self._fields):
            resp = send_bounded(self.client, request, *limits, **self._fields)
        latency_ms = round((time.perf_counter() - started) * 1000)
        self.check_status(resp)
        return resp, latency_ms

    def check_status(self, resp: httpx.Response) -> None:
        """Raise the classified error for a fully read non-2xx reply (redirects included)."""
        if not resp.is_success:
            raise self.classify_error(resp)

    def _send(self, req: ProviderRequest) -> ProviderReply:
        resp, latency_ms = self.exchange(self.build_request(req))
        return self.read_reply(req, resp, latency_ms)

    def read_reply(
        self, req: ProviderRequest, resp: httpx.Response, latency_ms: int
    ) -> ProviderReply:
        """A fully read 2xx reply to `req` as a scrubbed `ProviderReply` (usage estimated when
        the provider gave none), or `MalformedReply`; async_send.py shares it."""
        try:
            reply = self.parse_reply(resp)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise self.malformed(_why(exc), resp) from exc
        usage = estimated_usage(req, reply.text) if reply.usage.estimated else reply.usage
        refusal = scrub(reply.refusal) if reply.refusal else reply.refusal
        return replace(
            reply,
            text=scrub(reply.text),
            refusal=refusal,
            request_id=scrub(reply.request_id)[:200] if reply.request_id else None,
            tool_calls=tuple(_scrubbed_call(c) for c in reply.tool_calls),
            usage=usage,
            latency_ms=latency_ms,
        )


def _scrubbed_call(call: ToolCall) -> ToolCall:
    """A tool call with any echoed secret removed (a key inside a JSON string value stays a
    JSON string: the redaction marker has no quote or backslash)."""
    fields = {"id": scrub(call.id), "name": scrub(call.name), "arguments": scrub(call.arguments)}
    changed = {k: v for k, v in fields.items() if v != getattr(call, k)}
    return call.model_copy(update=changed) if changed else call
