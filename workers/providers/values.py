"""The values a provider adapter exchanges, provider-neutral (split from base.py to keep both
small; base.py re-exports them, so `from workers.providers.base import ProviderRequest` works).

Owns: `ProviderRequest` (one chat call), `RateLimitInfo`, `ProviderReply` (a parsed 2xx reply)
and `AdapterTarget` (what one deployment needs to be reached).
Must not: do I/O, know a provider's wire format, or hold a key anywhere but `AdapterTarget`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import SecretStr

from schemas.config import LLMModelConfig, ProviderSettings
from schemas.job import ChatMessage, Usage
from schemas.request import Features, ToolCall
from workers.providers.keys import KeyPool


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One chat call, provider-neutral. `max_tokens` is already resolved (never None); messages
    may carry parts, tool calls and results; `features`: output format, tools, sampling."""

    model_id: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    system: str | None = None
    temperature: float | None = None
    features: Features = Features()


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
    """A parsed 2xx reply. `finish_reason` uses OpenAI's words (stop, length, content_filter,
    tool_calls) when the provider's value has an equivalent, else the provider's, lower-cased;
    `tool_calls` whenever the reply has tool calls (then `text` may be ""). `refusal` is the
    model's refusal (OpenAI `message.refusal`, Anthropic `stop_reason: refusal`)."""

    text: str
    finish_reason: str | None
    usage: Usage
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str | None = None
    request_id: str | None = None
    model: str | None = None  # the model the provider says answered
    rate_limits: RateLimitInfo | None = None
    latency_ms: int = 0


@dataclass(slots=True)
class AdapterTarget:
    """Everything one deployment needs to be reached: resolved base URL, key and headers.
    `keys`: the deployment's key pool when it rotates keys (several keys or a key file)."""

    deployment: LLMModelConfig
    provider: ProviderSettings
    api_key: SecretStr | None
    extra: dict[str, str] = field(default_factory=dict)
    keys: KeyPool | None = None
