"""Jobs, results, usage and errors: the records shared by the producer and the workers.

Owns: pydantic models and enums for what a job asks and what it produced. Must not: do I/O.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.request import ContentPart, Features, ImageUrl, TextPart, ToolCall


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUOTA_EXCEEDED = "quota_exceeded"  # parked: kept, resumable, never dropped
    DEFERRED = "deferred"  # waiting for the nightly run


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class BatchState(StrEnum):
    ACTIVE = "active"
    DONE = "done"
    CANCELLED = "cancelled"


class ErrorKind(StrEnum):
    """Stable strings stored in the ledger; they mirror the leaves of core.errors."""

    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    AUTH_FAILED = "auth_failed"
    MODEL_NOT_FOUND = "model_not_found"
    INSUFFICIENT_CREDIT = "insufficient_credit"
    MALFORMED_REPLY = "malformed_reply"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    CONTENT_FILTERED = "content_filtered"
    QUOTA_EXCEEDED = "quota_exceeded"
    NO_DEPLOYMENT = "no_deployment"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    LOST = "lost"  # worker died mid-call; the sweeper closed the attempt
    INTERNAL = "internal"


class AttemptOutcome(StrEnum):
    STARTED = "started"  # written before the call; replaced when it finishes
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CACHE_HIT = "cache_hit"
    LOST = "lost"
    SUPERSEDED = "superseded"  # finished after another attempt took the job over


Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    """One turn. `content` is text, or content parts (text and images); an assistant turn may
    carry `tool_calls` (then content may be None); a `tool` turn answers `tool_call_id`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | tuple[ContentPart, ...] | None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The text of the turn: the string, or its text parts joined with newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def images(self) -> tuple[ImageUrl, ...]:
        if self.content is None or isinstance(self.content, str):
            return ()
        return tuple(p.image_url for p in self.content if not isinstance(p, TextPart))


class JobSpec(BaseModel):
    """What one input line asks for, normalised from either accepted JSONL format."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=256)
    model: str | None = None  # a configured model name; None = the default model
    messages: list[ChatMessage] = Field(min_length=1)
    system: str | None = None
    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    metadata: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True  # per-job opt-out of the response cache
    features: Features = Features()  # output format, tools, sampling (schemas/request.py)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # True when the provider reported no usage

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """A successful provider reply, as the pipeline records it."""

    text: str
    finish_reason: str | None = None
    usage: Usage
    provider: str
    model: str  # the configured model name
    model_id: str  # the provider's model id that answered
    latency_ms: int
    request_id: str | None = None
    cost_usd: Decimal | None = None  # None = price unknown


class ErrorRecord(BaseModel):
    type: str  # an ErrorKind value
    message: str
    status: int | None = None
    provider: str | None = None
