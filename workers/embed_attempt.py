"""One admitted embedding attempt (issue 17): the provider call(s), and the one transaction
that finishes it, with the same guarantees as a chat attempt (workers/attempt.py).

Owns: `embed_and_finish`: call the adapter's `embed` outside any transaction (it splits the
inputs into the provider's per-request limit and joins the vectors in order), then, in ONE
transaction fenced on the attempt number, the job's result (`Completion.embedding`: length and
count), its vectors as float32 bytes (`core/ledger/vectors_repo.py`), the attempt row (its
usage flagged `usage_estimated` when the provider reported none) and the quota settlement. A
failure goes through the chat path's `_finish_failure` (retry, fallback, fail). Must not:
choose deployments, reserve quota, decide retries or write SQL itself.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core import vectors
from core.errors import LLMQError
from core.ledger import jobs_repo, vectors_repo
from schemas.embedding import EmbeddingInfo
from schemas.job import Completion
from workers import usage_check
from workers.answer import answered_close
from workers.attempt import _finish_failure, _log_call, finish_tx, settle
from workers.pricing import cost as priced
from workers.providers.embed import EmbedReply, EmbedRequest, Embeds
from workers.run_types import Admitted, Clock, Outcome, ParsedJob

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


def embed_and_finish(rt: Runtime, job: ParsedJob, admitted: Admitted, clock: Clock) -> Outcome:
    """Make the admitted embedding call, then finish the attempt in one transaction."""
    embedding = job.request.embedding
    assert embedding is not None
    request = EmbedRequest(
        model_id=admitted.start.model,
        inputs=embedding.inputs,
        dimensions=embedding.dimensions,
        input_type=embedding.input_type,
    )
    adapter = rt.adapters[admitted.start.deployment]
    started = time.monotonic()
    try:
        if not isinstance(adapter, Embeds):  # routing and config checks keep this away
            raise adapter.refuse("this provider cannot embed")
        reply = adapter.embed(request, admitted.key)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded attempt
        if not isinstance(exc, LLMQError):
            log.exception("job %s: adapter raised outside the error tree", job.claim.id)
        elapsed = time.monotonic() - started
        return _finish_failure(rt, job, admitted, exc, clock.now(), elapsed)
    after = clock.now()
    latency_ms = reply.latency_ms or int((time.monotonic() - started) * 1000)
    rt.health.record_success(admitted.slot_id, latency_ms, reply.rate_limits, after.timestamp())
    return _finish_success(rt, job, admitted, reply, after, latency_ms)


def _finish_success(
    rt: Runtime,
    job: ParsedJob,
    admitted: Admitted,
    reply: EmbedReply,
    after: datetime,
    latency_ms: int,
) -> Outcome:
    claim, start = job.claim, admitted.start
    # The reservation bounds the input tokens (UTF-8 bytes + allowance per input): a count
    # above it is untrusted and booked at the reservation (issue 20's rule).
    book = usage_check.booked(
        reply.usage,
        priced(reply.usage, admitted.price, start.started_at),
        context_window=start.reserved_tokens,
        max_tokens=0,
        reserved_tokens=start.reserved_tokens,
        reserved_usd=start.reserved_usd,
    )
    usage, cost = book.usage, book.cost_usd
    data, dims = vectors.pack(reply.vectors)
    completion = Completion(
        text="",
        usage=usage,
        provider=start.provider,
        model=admitted.candidate.model_name,
        model_id=reply.model or start.model,
        latency_ms=latency_ms,
        request_id=reply.request_id,
        cost_usd=cost,
        embedding=EmbeddingInfo(dimensions=dims, count=len(reply.vectors)),
    )

    def write(s: Session) -> bool:
        won = jobs_repo.complete_job(s, claim, completion, after)
        if won:
            vectors_repo.store(s, claim.id, data, dims, len(reply.vectors))
        close = answered_close(won, latency_ms, usage, cost, book, reply.request_id)
        previous = jobs_repo.close_attempt(s, claim.id, claim.attempt_no, close)
        settle(s, claim, start, previous, usage.total_tokens, cost)
        return won

    won = finish_tx(rt, write)
    outcome = "succeeded" if won else "superseded"
    _log_call(claim, start, 200, outcome, None, latency_ms, usage, cost)
    return Outcome(outcome)
