"""One admitted attempt: the provider call, and the one transaction that finishes it.

Owns: `call_and_finish` (call the adapter outside any transaction; then, in ONE transaction,
close the attempt row, settle its quota reservation and, if the claim still holds the job,
write the job's result or its next step from `retry.decide`). The values it gets and returns
(`ParsedJob`, `Admitted`, `Clock`, `Outcome`) live in workers/run_types.py. Must not: choose
deployments or reserve quota (workers/admission.py does, before), decide retries
(workers/retry.py does), or write SQL (the ledger repos do).

A reply that does not give what the request asked for (JSON that does not parse or fit its
schema, unusable tool calls, a refusal: workers/output.py) is a failed attempt of kind
`invalid_output` or `refused`, but a billed one: its usage and cost go on the attempt row and
settle the reservation like any answered call, the deployment's health counts it as answered,
and the job's error keeps the reply as received (`ErrorRecord.raw`) when it ends there.

A superseded attempt (its claim lost the job to a newer one) still records what the provider
billed on its attempt row and settles its reservation, but never touches the job.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.errors import InvalidOutput, LLMProviderError, LLMQError, Refused
from core.ledger import jobs_repo, quota_repo
from core.ledger.db import session_scope
from core.ledger.jobs_repo import AttemptClose, AttemptStart, ClaimedJob
from schemas.job import AttemptOutcome, Completion, ErrorKind, ErrorRecord, Usage
from workers import retry, usage_check
from workers.answer import Answer
from workers.observability.logs import log_provider_call
from workers.output import Invalid, check_output
from workers.pricing import cost as priced
from workers.providers.base import ProviderReply, ProviderRequest
from workers.run_types import Admitted, Clock, Outcome, ParsedJob

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

FINISH_TRIES = 3  # the call is paid for: retry a failed finishing transaction briefly

T = TypeVar("T")


def call_and_finish(rt: Runtime, job: ParsedJob, admitted: Admitted, clock: Clock) -> Outcome:
    """Make the admitted call, then finish the attempt in one transaction."""
    request = provider_request(job, admitted)
    started = time.monotonic()
    try:
        reply = rt.adapters[admitted.start.deployment].complete(request, admitted.key)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded attempt
        return finish_raised(rt, job, admitted, exc, clock, time.monotonic() - started)
    checked = check_reply(rt, job, admitted, reply, clock, time.monotonic() - started)
    if isinstance(checked, Outcome):
        return checked
    return _finish_success(rt, checked)


def provider_request(job: ParsedJob, admitted: Admitted) -> ProviderRequest:
    """The provider-neutral request of an admitted chat call."""
    dep = admitted.candidate.deployment
    temperature = job.temperature if job.temperature is not None else dep.temperature
    return ProviderRequest(
        model_id=admitted.start.model,
        messages=job.request.messages,
        max_tokens=admitted.candidate.max_tokens,
        system=job.request.system,
        temperature=temperature,
        features=job.request.features,
    )


def finish_raised(
    rt: Runtime, job: ParsedJob, admitted: Admitted, exc: Exception, clock: Clock, elapsed: float
) -> Outcome:
    """Finish an attempt whose call raised (a provider error, or a bug: both are recorded)."""
    if not isinstance(exc, LLMQError):
        log.error("job %s: adapter raised outside the error tree", job.claim.id, exc_info=exc)
    return _finish_failure(rt, job, admitted, exc, clock.now(), elapsed)


def check_reply(  # noqa: PLR0913 - the run's values plus the reply and its timing
    rt: Runtime,
    job: ParsedJob,
    admitted: Admitted,
    reply: ProviderReply,
    clock: Clock,
    elapsed: float,
    *,
    health_recorded: bool = False,
) -> Answer | Outcome:
    """Record the answered call in the deployment's health (unless the caller did, for many
    at once) and check its output: the `Answer` to write, or the finished failure
    (`Outcome`) of an unusable reply."""
    after = clock.now()
    latency_ms = reply.latency_ms or int(elapsed * 1000)
    # The deployment answered: its health counts the call whatever the output's verdict.
    if not health_recorded:
        rt.health.record_success(admitted.slot_id, latency_ms, reply.rate_limits, after.timestamp())
    features = job.request.features
    verdict = check_output(
        features, reply.text, reply.tool_calls, reply.refusal, reply.finish_reason
    )
    book = _booked(admitted, reply)  # billed either way (untrusted usage too)
    if isinstance(verdict, Invalid):
        error = _output_error(verdict, admitted, reply)
        billed = (book.usage, book.cost_usd)
        return _finish_failure(
            rt, job, admitted, error, after, elapsed, billed=billed, raw=_raw(reply)
        )
    start = admitted.start
    completion = Completion(
        text=reply.text,
        finish_reason=reply.finish_reason,
        usage=book.usage,
        provider=start.provider,
        model=admitted.candidate.model_name,
        model_id=reply.model or start.model,
        latency_ms=latency_ms,
        request_id=reply.request_id,
        cost_usd=book.cost_usd,
        tool_calls=reply.tool_calls,
        parsed=verdict.parsed,
    )
    return Answer(job, admitted, completion, book, after, latency_ms, reply.request_id)


def _booked(admitted: Admitted, reply: ProviderReply) -> usage_check.Booked:
    """What a 2xx reply books. Issue 20: an untrusted usage (absurd, negative, non-integer)
    is booked at the attempt's reservation, never as reported."""
    start = admitted.start
    return usage_check.booked(
        reply.usage,
        # priced at the request's time: the prices (and tiers) in force when it was sent
        priced(reply.usage, admitted.price, start.started_at),
        context_window=admitted.candidate.deployment.context_window,
        max_tokens=admitted.candidate.max_tokens,
        reserved_tokens=start.reserved_tokens,
        reserved_usd=start.reserved_usd,
    )


def _output_error(verdict: Invalid, admitted: Admitted, reply: ProviderReply) -> LLMProviderError:
    """The failed attempt an unusable 2xx reply is (it was billed: see `_finish_failure`)."""
    cls = Refused if verdict.kind == "refused" else InvalidOutput
    start = admitted.start
    return cls(
        f"{start.provider} ({start.model}): {verdict.reason}",
        provider=start.provider,
        model=start.model,
        deployment=start.deployment,
        status=200,
        request_id=reply.request_id,
    )


def _raw(reply: ProviderReply) -> dict[str, Any]:
    """The reply as received, for the job's error record (only what it holds)."""
    raw: dict[str, Any] = {"text": reply.text, "finish_reason": reply.finish_reason}
    if reply.tool_calls:
        raw["tool_calls"] = [c.model_dump(mode="json") for c in reply.tool_calls]
    if reply.refusal is not None:
        raw["refusal"] = reply.refusal
    return raw


def _finish_success(rt: Runtime, answer: Answer) -> Outcome:
    claim, start = answer.job.claim, answer.admitted.start
    usage, cost = answer.book.usage, answer.book.cost_usd

    def write(s: Session) -> bool:
        won = jobs_repo.complete_job(s, claim, answer.completion, answer.after)
        previous = jobs_repo.close_attempt(s, claim.id, claim.attempt_no, answer.close(won))
        settle(s, claim, start, previous, usage.total_tokens, cost)
        return won

    won = finish_tx(rt, write)
    log_answer(answer, won)
    return Outcome("succeeded") if won else Outcome("superseded")


def log_answer(answer: Answer, won: bool) -> None:
    """The call's log line (issue 7), once its finish is written."""
    usage, cost = answer.book.usage, answer.book.cost_usd
    outcome = "succeeded" if won else "superseded"
    claim, start = answer.job.claim, answer.admitted.start
    _log_call(claim, start, 200, outcome, None, answer.latency_ms, usage, cost)


def _finish_failure(  # noqa: PLR0913 - the run's values plus what an answered call billed
    rt: Runtime,
    job: ParsedJob,
    admitted: Admitted,
    error: Exception,
    after: datetime,
    elapsed: float,
    *,
    billed: tuple[Usage, Decimal | None] | None = None,
    raw: dict[str, Any] | None = None,
) -> Outcome:
    """Record a failed attempt and the job's next step. `billed`: the usage and cost of a call
    that was answered (and so billed) but failed the output check; `raw`: that reply, kept in
    the job's error when the job fails on it. Without `billed` the call failed at the provider,
    which also counts against the deployment's health."""
    claim, start = job.claim, admitted.start
    policy = rt.config.routing
    if isinstance(error, LLMProviderError) and billed is None:
        rt.health.record_failure(admitted.slot_id, error, after.timestamp(), policy)
    decision = retry.decide(error, claim.budget_attempt_no, policy, admitted.left, random.random())
    excluded = claim.excluded | {start.deployment} if decision.exclude else claim.excluded
    status = getattr(error, "status", None)
    kind = error.kind if isinstance(error, LLMQError) else ErrorKind.INTERNAL
    message = str(error) or type(error).__name__
    delay = max(decision.delay_s, 0.0)
    countdown = delay if delay <= policy.max_countdown_s else None
    not_before = after + timedelta(seconds=delay) if delay > 0 else None
    # A call failed at the provider reports no usage, so it books nothing (as the attempt row
    # says). Known gap: a provider may bill a call that timed out or returned an unreadable
    # body. An answered call with unusable output books what it billed.
    usage = billed[0] if billed is not None else Usage()
    spent_usd = billed[1] if billed is not None else Decimal(0)
    spent_tokens = usage.total_tokens

    def write(s: Session) -> bool:
        if decision.action == "fail":
            record = ErrorRecord(
                type=decision.kind.value,
                message=message,
                status=status,
                provider=start.provider,
                raw=raw,
            )
            won = jobs_repo.fail_job(s, claim, record, after, excluded=excluded)
        else:
            won = jobs_repo.requeue_job(
                s,
                claim,
                not_before,
                wait_ms=int(delay * 1000),
                excluded=excluded,
                message_due=(not_before or after) if countdown is not None else None,
            )
        close = AttemptClose(
            outcome=AttemptOutcome.FAILED if won else AttemptOutcome.SUPERSEDED,
            latency_ms=int(elapsed * 1000),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=spent_usd if billed is not None else None,
            http_status=status,
            error_kind=str(kind),
            error_message=message,
            request_id=getattr(error, "request_id", None),
        )
        previous = jobs_repo.close_attempt(s, claim.id, claim.attempt_no, close)
        settle(s, claim, start, previous, spent_tokens, spent_usd)
        return won

    won = finish_tx(rt, write)
    outcome = "failed" if won else "superseded"
    logged = (usage, spent_usd) if billed is not None else (None, None)
    _log_call(claim, start, status, outcome, str(kind), int(elapsed * 1000), *logged)
    if not won:
        return Outcome("superseded")
    log.info(
        "job %s attempt %d on %s: %s -> %s (%.2fs)",
        claim.id,
        claim.attempt_no,
        start.deployment,
        kind,
        decision.action,
        delay,
    )
    if decision.action == "fail":
        return Outcome("failed")
    return Outcome(decision.action, countdown)


def settle(
    s: Session,
    claim: ClaimedJob,
    start: AttemptStart,
    previous: str | None,
    tokens: int,
    usd: Decimal | None,
) -> None:
    """Replace the attempt's reservation by what it spent.

    If the sweeper had already closed the attempt as lost, it booked the reservation as spent
    (`spent_unknown`, issue 19): replace that booking by the real spend (an unknown price keeps
    the worst case). If the row was closed otherwise, it was settled already.
    """
    if previous is None:
        return
    if previous == AttemptOutcome.LOST.value:
        booked = start.reserved_usd if usd is None else usd
        tokens_delta, usd_delta = tokens - start.reserved_tokens, booked - start.reserved_usd
        quota_repo.settle(
            s, claim.tenant, claim.batch_id, start.started_at, 0, Decimal(0), tokens_delta,
            usd_delta,
        )  # fmt: skip
        return
    quota_repo.settle(
        s,
        claim.tenant,
        claim.batch_id,
        start.started_at,
        start.reserved_tokens,
        start.reserved_usd,
        tokens,
        usd,
    )


def _log_call(  # noqa: PLR0913 - the fields of the one log line per provider call
    claim: ClaimedJob,
    start: AttemptStart,
    status: int | None,
    outcome: str,
    error_kind: str | None,
    latency_ms: int,
    usage: Usage | None,
    cost: Decimal | None,
) -> None:
    """The one structured log line per provider call (issue 7)."""
    log_provider_call(
        log,
        job_id=claim.id,
        batch_id=claim.batch_id,
        attempt_no=claim.attempt_no,
        provider=start.provider,
        model=start.model,
        deployment=start.deployment,
        status=status,
        outcome=outcome,
        error_kind=error_kind,
        latency_ms=latency_ms,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        cost_usd=cost,
    )


def finish_tx(rt: Runtime, write: Callable[[Session], T]) -> T:
    """Run the finishing transaction, retrying a dropped connection a few times: the call is
    already paid for, and losing its record would leave it to the lease and the sweeper."""
    for attempt in range(1, FINISH_TRIES + 1):
        try:
            with session_scope(rt.sessions) as s:
                return write(s)
        except OperationalError:
            if attempt == FINISH_TRIES:
                raise
            log.warning("finishing transaction failed (try %d), retrying", attempt)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")
