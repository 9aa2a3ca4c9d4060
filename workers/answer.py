"""What an answered call writes: `Answer` (an answer whose output passed its check) and
`answered_close` (the attempt row of any 2xx call, chat or embeddings).

Owns: these values only. Must not: do I/O; workers/attempt.py and workers/chunk/finish.py
write them (one job, or a chunk's answers in one transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.ledger.jobs_repo import AttemptClose
from schemas.job import AttemptOutcome, Completion, Usage
from workers import usage_check
from workers.run_types import Admitted, ParsedJob


@dataclass(frozen=True, slots=True)
class Answer:
    """An answered call whose output passed its check: what its finishing writes."""

    job: ParsedJob
    admitted: Admitted
    completion: Completion
    book: usage_check.Booked
    after: datetime
    latency_ms: int
    request_id: str | None

    def close(self, won: bool) -> AttemptClose:
        usage = self.book.usage
        return answered_close(
            won, self.latency_ms, usage, self.book.cost_usd, self.book, self.request_id
        )


def answered_close(  # noqa: PLR0913 - the values of one answered call
    won: bool,
    latency_ms: int,
    usage: Usage,
    cost: Decimal | None,
    book: usage_check.Booked,
    request_id: str | None,
) -> AttemptClose:
    """The attempt row of a call that answered 2xx (chat or embeddings): succeeded, or
    superseded when another attempt took the job over meanwhile; billed either way."""
    return AttemptClose(
        outcome=AttemptOutcome.SUCCEEDED if won else AttemptOutcome.SUPERSEDED,
        latency_ms=latency_ms,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost,
        http_status=200,
        error_kind=book.error_kind,
        error_message=book.note,
        request_id=request_id,
        usage_estimated=usage.estimated,
    )
