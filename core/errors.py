"""The one exception tree of llmq. Adapters translate wire errors into it at the edge.

    LLMQError                         root; keyword fields, pickles (Celery, multiprocessing)
    ├── ConfigError                   bad llm_config.yaml / settings; names file, field, problem
    ├── JobError
    │   ├── InvalidJob                valid schema but unroutable (unknown model, ...)
    │   └── QuotaExceeded             no budget room; the job is parked as quota_exceeded
    ├── InfraError                    our own Postgres/Redis failures: retry, job untouched
    └── LLMProviderError              provider, model, status, retry_after, request_id
        ├── TransientProviderError    retry later, maybe elsewhere
        │   ├── RateLimited           429 (honours retry_after)
        │   ├── ProviderUnavailable   5xx, 529 overloaded, connection errors
        │   └── ProviderTimeout       the call took too long
        ├── ProviderRejected          skip this deployment for this job
        │   ├── AuthFailed            401/403; opens the deployment's circuit
        │   ├── ModelUnavailable      404 / unknown model
        │   ├── InsufficientCredit    402 / provider-side quota exhausted
        │   ├── MalformedReply        2xx whose body cannot be parsed
        │   ├── InvalidOutput         2xx whose JSON / tool calls do not parse or fit the schema
        │   └── ReplyTooLarge         body over `max_reply_bytes`; reading stopped at the limit
        └── RequestRejected           bad everywhere: fail the job, no retry
            ├── BadRequest            400/422
            ├── ContextTooLong        prompt + max_tokens beyond the window (may move to a bigger one)
            ├── ContentFiltered       refused by the provider's safety filter
            └── Refused               the model declined to answer (a refusal in a 2xx reply)

InvalidOutput and Refused are raised by the pipeline's output check (workers/output.py), not
by an adapter: the reply arrived, was billed, and does not give what the request asked for.
They carry `raw` (the reply's text, tool calls and refusal as received).

Classification is by class, never by message text. `kind` gives the ledger's stable string.
"""

from __future__ import annotations

from typing import Any

from core.secrets_scrub import scrub
from schemas.job import ErrorKind


class LLMQError(Exception):
    """Root. Extra fields are keyword arguments so `__reduce__` can rebuild the exception."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[LLMQError], message: str, fields: dict[str, Any]) -> LLMQError:
    return cls(message, **fields)


class ConfigError(LLMQError):
    """A configuration problem: the message names the file, the field and the reason."""


class JobError(LLMQError):
    pass


class InvalidJob(JobError):
    kind = ErrorKind.NO_DEPLOYMENT


class QuotaExceeded(JobError):
    kind = ErrorKind.QUOTA_EXCEEDED


class InfraError(LLMQError):
    pass


class LLMProviderError(LLMQError):
    """Any provider failure. Fields: provider, model, status, retry_after (s), request_id.

    Its text comes from the provider (messages, codes, request ids), which may echo a key or a
    configured header: the message and every text field are scrubbed of registered secrets
    here, so str, repr, pickle and whatever stores them never carry one.
    """

    provider: str | None = None
    model: str | None = None
    status: int | None = None
    retry_after: float | None = None
    request_id: str | None = None

    def __init__(self, message: str = "", **fields: Any) -> None:
        clean = {k: scrub(v) if isinstance(v, str) else v for k, v in fields.items()}
        super().__init__(scrub(message), **clean)


class TransientProviderError(LLMProviderError):
    kind = ErrorKind.UNAVAILABLE


class RateLimited(TransientProviderError):
    kind = ErrorKind.RATE_LIMITED


class ProviderUnavailable(TransientProviderError):
    kind = ErrorKind.UNAVAILABLE


class ProviderTimeout(TransientProviderError):
    kind = ErrorKind.TIMEOUT


class ProviderRejected(LLMProviderError):
    kind = ErrorKind.MODEL_NOT_FOUND


class AuthFailed(ProviderRejected):
    kind = ErrorKind.AUTH_FAILED


class ModelUnavailable(ProviderRejected):
    kind = ErrorKind.MODEL_NOT_FOUND


class InsufficientCredit(ProviderRejected):
    kind = ErrorKind.INSUFFICIENT_CREDIT


class MalformedReply(ProviderRejected):
    kind = ErrorKind.MALFORMED_REPLY


class InvalidOutput(ProviderRejected):
    """The reply does not parse as the JSON asked for, does not validate against the given
    schema, or its tool calls are unusable. Retried on another deployment when one exists."""

    kind = ErrorKind.INVALID_OUTPUT


class ReplyTooLarge(ProviderRejected):
    """A reply body over the configured limit. Not transient: the same deployment would most
    likely send (and bill) the same huge body again, so the job moves to another deployment,
    or fails when there is none (`retry.decide` treats it like any `ProviderRejected`)."""

    kind = ErrorKind.REPLY_TOO_LARGE


class RequestRejected(LLMProviderError):
    kind = ErrorKind.BAD_REQUEST


class BadRequest(RequestRejected):
    kind = ErrorKind.BAD_REQUEST


class ContextTooLong(RequestRejected):
    kind = ErrorKind.CONTEXT_TOO_LONG


class ContentFiltered(RequestRejected):
    kind = ErrorKind.CONTENT_FILTERED


class Refused(RequestRejected):
    """The model refused (OpenAI `message.refusal`, Anthropic `stop_reason: refusal`): a verdict
    on the content, reported as such and not retried elsewhere (workers/retry.py says why)."""

    kind = ErrorKind.REFUSED
