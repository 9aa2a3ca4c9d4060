"""Jobs, results, usage and errors: the records shared by the producer and the workers.

Owns: pydantic models and enums for what a job asks and what it produced. Must not: do I/O.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.embedding import EmbeddingInfo, EmbeddingRequest
from schemas.request import (
    NO_FEATURES,
    ContentPart,
    Features,
    ImageUrl,
    TextPart,
    ToolCall,
)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUOTA_EXCEEDED = "quota_exceeded"  # parked: kept, resumable, never dropped
    DEFERRED = "deferred"  # waiting for the nightly run
    BATCHED = "batched"  # waiting in a provider batch lane (issue 18); no lease, no message


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
    REPLY_TOO_LARGE = "reply_too_large"
    BAD_REQUEST = "bad_request"
    CONTEXT_TOO_LONG = "context_too_long"
    CONTENT_FILTERED = "content_filtered"
    INVALID_OUTPUT = "invalid_output"  # JSON / tool calls that do not parse or fit the schema
    REFUSED = "refused"  # the model declined to answer (a refusal in a 2xx reply)
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


def _is_none(value: Any) -> bool:
    return value is None


def _no_calls(value: tuple[Any, ...]) -> bool:
    return not value


def _no_features(value: Features) -> bool:
    return value.is_empty


Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(BaseModel):
    """One turn. `content` is text, or content parts (text and images); an assistant turn may
    carry `tool_calls` (then content may be None); a `tool` turn answers `tool_call_id`.

    Images only in user turns. Dumped without `tool_calls` / `tool_call_id` while they are None,
    so a plain turn dumps as ``{"role", "content"}``, as before issue 15. `openai()` gives the
    OpenAI Chat Completions form.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | tuple[ContentPart, ...] | None
    tool_calls: tuple[ToolCall, ...] | None = Field(default=None, min_length=1, exclude_if=_is_none)
    tool_call_id: str | None = Field(default=None, min_length=1, exclude_if=_is_none)

    @model_validator(mode="after")
    def _fits_role(self) -> ChatMessage:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("tool_calls are only for assistant messages")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has one")
        if self.content is None and self.tool_calls is None:
            raise ValueError("content may be null only in an assistant message with tool_calls")
        if self.role != "user" and self.images:
            raise ValueError("image parts are only for user messages")
        return self

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

    def openai(self) -> dict[str, Any]:
        """This turn as an OpenAI chat message."""
        out: dict[str, Any] = {"role": self.role}
        if self.content is None or isinstance(self.content, str):
            out["content"] = self.content
        else:
            out["content"] = [p.model_dump(mode="json") for p in self.content]
        if self.tool_calls is not None:
            out["tool_calls"] = [c.openai() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class JobSpec(BaseModel):
    """What one input line asks for, normalised from either accepted JSONL format.

    A dump leaves `features` out while the request asks for none, so a plain-text job dumps
    (and is stored) exactly as before issue 15."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=256)
    model: str | None = None  # a configured model name; None = the default model
    # A chat job has messages; an embedding job (issue 17) has `embedding` and no messages.
    messages: list[ChatMessage] = Field(default_factory=list)
    system: str | None = None
    max_tokens: int | None = Field(default=None, gt=0, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    metadata: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True  # per-job opt-out of the response cache
    # output format, tools, sampling (schemas/request.py)
    features: Features = Field(default=NO_FEATURES, exclude_if=_no_features)
    embedding: EmbeddingRequest | None = Field(default=None, exclude_if=_is_none)

    @model_validator(mode="after")
    def _chat_or_embedding(self) -> JobSpec:
        if self.embedding is None and not self.messages:
            raise ValueError("messages: List should have at least 1 item")
        if self.embedding is not None and self.messages:
            raise ValueError("an embedding job has no messages")
        return self

    @property
    def is_embedding(self) -> bool:
        return self.embedding is not None


class Usage(BaseModel):
    """Tokens one call used, as the provider bills them (issue 19).

    `prompt_tokens` and `completion_tokens` are totals, whatever the provider's own nesting:
    cache reads and writes are inside `prompt_tokens`, reasoning inside `completion_tokens`.
    The adapters map each provider's fields onto this shape (request-fidelity.md §5).
    """

    prompt_tokens: int = 0  # every input token, cache reads and writes included
    completion_tokens: int = 0  # every output token, reasoning included
    cached_tokens: int = 0  # of prompt_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens: written to the provider's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens: thinking the reply does not show
    estimated: bool = False  # True when the provider reported no usage

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """A successful provider reply, as the pipeline records it.

    `tool_calls`: the calls the model asked for (arguments as JSON text, OpenAI's form);
    `parsed`: the JSON value of `text` when the request asked for JSON (validated against its
    schema when it gave one); `refusal`: the model's refusal text, for a caller that reports a
    refusal as an answer (the queue fails it as `refused` instead, so a stored result never
    has one). Left out of a dump while empty: a plain-text result is stored as before issue 15.
    """

    text: str
    finish_reason: str | None = None
    usage: Usage
    provider: str
    model: str  # the configured model name
    model_id: str  # the provider's model id that answered
    latency_ms: int
    request_id: str | None = None
    cost_usd: Decimal | None = None  # None = price unknown
    tool_calls: tuple[ToolCall, ...] = Field(default=(), exclude_if=_no_calls)
    parsed: Any = Field(default=None, exclude_if=_is_none)
    refusal: str | None = Field(default=None, exclude_if=_is_none)
    embedding: EmbeddingInfo | None = Field(default=None, exclude_if=_is_none)  # issue 17


class ErrorRecord(BaseModel):
    """Why a job failed. `raw`: the last reply the provider gave when it was unusable
    (invalid_output, refused): its text, tool calls and refusal as received."""

    type: str  # an ErrorKind value
    message: str
    status: int | None = None
    provider: str | None = None
    raw: dict[str, Any] | None = Field(default=None, exclude_if=_is_none)
