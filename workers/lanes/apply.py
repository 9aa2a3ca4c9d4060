"""Applying one batch item's outcome (issue 18): the same finish as a sync attempt.

Owns: `apply_item`. In ONE transaction (fenced; `lanes_repo.take_back` moves the job from
`batched` back to `running` only if it still waits on this attempt): close the attempt with
its tokens and its cost at the batch price (and what the sync lane would have cost), settle
the reservation, and write the job's result, or its next step from `retry.decide` for an item
error, or send it back to routing (an item its provider batch never ran: expired, cancelled,
failed, or taken back near the deadline; not billed). Applying the same outcome twice changes
nothing. Must not: call the provider, decide retries (workers/retry.py), or write SQL.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core.errors import LLMProviderError, LLMQError
from core.ledger import jobs_repo, lanes_repo, quota_repo
from core.ledger.jobs_repo import AttemptClose
from core.ledger.lanes_repo import ItemRow
from schemas.job import AttemptOutcome, Completion, ErrorKind, ErrorRecord, Usage
from workers import retry, usage_check
from workers.attempt import finish_tx
from workers.output import Invalid, check_output
from workers.pricing import Price
from workers.pricing import cost as priced
from workers.providers.batch import ItemResult

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

UNRUN = "the provider batch ended before this item ran ({why}); back to routing"


def apply_item(
    rt: Runtime, item: ItemRow, result: ItemResult | None, why: str, now: datetime
) -> str:
    """Apply one item's outcome; returns what happened: succeeded, failed, requeued, stale."""
    if result is not None and result.reply is not None:
        return finish_tx(rt, lambda s: _success(rt, s, item, result, now))
    error = result.error if result is not None else None
    return finish_tx(rt, lambda s: _not_succeeded(rt, s, item, error, why, now))


def _settle(s: Session, item: ItemRow, tokens: int, usd: Decimal) -> None:
    c = item.claim
    quota_repo.settle(
        s, c.tenant, c.batch_id, item.started_at, item.reserved_tokens, item.reserved_usd, tokens, usd
    )  # fmt: skip


def _success(rt: Runtime, s: Session, item: ItemRow, result: ItemResult, now: datetime) -> str:
    reply = result.reply
    assert reply is not None
    claim = item.claim
    if not lanes_repo.take_back(s, claim, now):
        return "stale"
    dep = rt.deployments[item.deployment]
    sync_price, lane_price = rt.prices.get(item.deployment), rt.batch_prices.get(item.deployment)
    max_tokens = int(claim.spec.get("max_tokens") or dep.max_tokens)
    book = usage_check.booked(
        reply.usage, lane_cost(reply.usage, sync_price, lane_price, item.started_at),
        context_window=dep.context_window,
        max_tokens=max_tokens, reserved_tokens=item.reserved_tokens, reserved_usd=item.reserved_usd,
    )  # fmt: skip
    verdict = check_output(
        _features(claim), reply.text, reply.tool_calls, reply.refusal, reply.finish_reason
    )
    if isinstance(verdict, Invalid):
        return _close_failed(rt, s, item, verdict.reason, book.usage, book.cost_usd, now)
    completion = Completion(
        text=reply.text, finish_reason=reply.finish_reason, usage=book.usage,
        provider=str(dep.provider), model=dep.name, model_id=reply.model or item.model,
        latency_ms=0, request_id=reply.request_id, cost_usd=book.cost_usd,
        tool_calls=reply.tool_calls, parsed=verdict.parsed,
    )  # fmt: skip
    won = jobs_repo.complete_job(s, claim, completion, now)
    close = AttemptClose(
        outcome=AttemptOutcome.SUCCEEDED if won else AttemptOutcome.SUPERSEDED,
        latency_ms=int((now - item.started_at).total_seconds() * 1000),
        prompt_tokens=book.usage.prompt_tokens, completion_tokens=book.usage.completion_tokens,
        cached_tokens=book.usage.cached_tokens, cache_write_tokens=book.usage.cache_write_tokens,
        reasoning_tokens=book.usage.reasoning_tokens,
        cost_usd=book.cost_usd, http_status=200, error_kind=book.error_kind,
        error_message=book.note, request_id=reply.request_id,
    )  # fmt: skip
    if jobs_repo.close_attempt(s, claim.id, claim.attempt_no, close) is None:
        s.rollback()  # closed already: applied before
        return "stale"
    _settle(s, item, book.usage.total_tokens, book.cost_usd or Decimal(0))
    lanes_repo.note_sync_cost(s, claim, priced(book.usage, sync_price, item.started_at))
    return "succeeded" if won else "stale"


def lane_cost(usage: Usage, sync: Price | None, lane: Price | None, at: datetime) -> Decimal | None:
    """A batch item's cost (issue 19): genai-prices' batch processing on the whole usage when
    the lane price is genai-prices' batch price (cache rates and tiers included), else the
    lane price's rates (the configured batch_discount of the sync price)."""
    if lane is not None and lane.source == "genai-prices batch" and sync is not None and sync.ref:
        return priced(usage, sync, at, batch=True)
    return priced(usage, lane, at)


def _features(claim: jobs_repo.ClaimedJob):  # type: ignore[no-untyped-def]
    from schemas.request import NO_FEATURES, Features

    raw = claim.spec.get("features")
    return Features.model_validate(raw) if raw else NO_FEATURES


def _close_failed(  # noqa: PLR0913 - a billed but unusable reply
    rt: Runtime,
    s: Session,
    item: ItemRow,
    reason: str,
    usage: Usage,
    usd: Decimal | None,
    now: datetime,
) -> str:
    from core.errors import InvalidOutput

    error = InvalidOutput(
        reason, provider="", model=item.model, deployment=item.deployment, status=200
    )
    return _next_step(rt, s, item, error, usage, usd or Decimal(0), str(error), now)


def _not_succeeded(  # noqa: PLR0913
    rt: Runtime, s: Session, item: ItemRow, error: LLMProviderError | None, why: str, now: datetime
) -> str:
    if not lanes_repo.take_back(s, item.claim, now):
        return "stale"
    if error is None:  # never ran: not billed, not the job's fault
        return _requeue(s, item, UNRUN.format(why=why), now)
    return _next_step(rt, s, item, error, Usage(), Decimal(0), str(error), now)


def _requeue(s: Session, item: ItemRow, message: str, now: datetime) -> str:
    close = AttemptClose(
        outcome=AttemptOutcome.FAILED, latency_ms=0, cost_usd=Decimal(0),
        error_kind=ErrorKind.UNAVAILABLE.value, error_message=message,
    )  # fmt: skip
    if jobs_repo.close_attempt(s, item.claim.id, item.claim.attempt_no, close) is None:
        s.rollback()
        return "stale"
    _settle(s, item, 0, Decimal(0))
    jobs_repo.requeue_job(s, item.claim, None, wait_ms=0, message_due=now)
    return "requeued"


def _next_step(  # noqa: PLR0913 - the item's error and what it billed
    rt: Runtime,
    s: Session,
    item: ItemRow,
    error: Exception,
    usage: Usage,
    usd: Decimal,
    message: str,
    now: datetime,
) -> str:
    claim, policy = item.claim, rt.config.routing
    left = len(rt.route_deployment_ids(claim.model)) - 1
    decision = retry.decide(error, claim.budget_attempt_no, policy, left, random.random())
    excluded = claim.excluded | {item.deployment} if decision.exclude else claim.excluded
    kind = error.kind if isinstance(error, LLMQError) else ErrorKind.INTERNAL
    if decision.action == "fail":
        record = ErrorRecord(
            type=decision.kind.value, message=message, status=getattr(error, "status", None)
        )
        won = jobs_repo.fail_job(s, claim, record, now, excluded=excluded)
    else:
        due = now + timedelta(seconds=max(decision.delay_s, 0.0))
        won = jobs_repo.requeue_job(
            s, claim, due, wait_ms=int(decision.delay_s * 1000), excluded=excluded, message_due=due
        )
    close = AttemptClose(
        outcome=AttemptOutcome.FAILED if won else AttemptOutcome.SUPERSEDED, latency_ms=0,
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
        cost_usd=usd, http_status=getattr(error, "status", None), error_kind=str(kind),
        error_message=message,
    )  # fmt: skip
    if jobs_repo.close_attempt(s, claim.id, claim.attempt_no, close) is None:
        s.rollback()
        return "stale"
    _settle(s, item, usage.total_tokens, usd)
    return "failed" if decision.action == "fail" else "requeued"
