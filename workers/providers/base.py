"""The adapter interface every provider module implements, and the values it exchanges.

Owns: `ProviderRequest`, `ProviderReply`, `RateLimitInfo` and the `ProviderAdapter` base class
whose `complete()` is the only I/O path to a provider. Must not: know any provider's format
(that is each provider module's job) or touch the ledger, Redis or the clock beyond timing.

Contract for subclasses: three pure methods, `build_request`, `parse_reply`, `classify_error`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import httpx
from pydantic import SecretStr

from schemas.config import LLMModelConfig, LLMProvider, ProviderSettings
from schemas.job import ChatMessage, Usage


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One chat call, provider-neutral. `max_tokens` is already resolved (never None)."""

    model_id: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    system: str | None = None
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a reply's rate-limit headers said. Seconds for resets; None = not sent."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderReply:
    text: str
    finish_reason: str | None
    usage: Usage
    request_id: str | None = None
    model: str | None = None  # the model the provider says answered
    rate_limits: RateLimitInfo | None = None
    latency_ms: int = 0


@dataclass(slots=True)
class AdapterTarget:
    """Everything one deployment needs to be reached: resolved base URL, key and headers."""

    deployment: LLMModelConfig
    provider: ProviderSettings
    api_key: SecretStr | None
    extra: dict[str, str] = field(default_factory=dict)


class ProviderAdapter:
    """Base class: subclasses set the class attributes and the three pure methods."""

    name: ClassVar[LLMProvider]
    env_key: ClassVar[str | None]
    default_base_url: ClassVar[str]
    requires_key: ClassVar[bool] = True

    def __init__(self, target: AdapterTarget, client: httpx.Client) -> None:
        self.target = target
        self.client = client

    def build_request(self, req: ProviderRequest) -> httpx.Request:
        raise NotImplementedError

    def parse_reply(self, resp: httpx.Response) -> ProviderReply:
        raise NotImplementedError

    def classify_error(self, resp: httpx.Response) -> Exception:
        raise NotImplementedError

    def complete(self, req: ProviderRequest) -> ProviderReply:
        """Send one request; return the parsed reply or raise an `LLMProviderError`."""
        raise NotImplementedError
