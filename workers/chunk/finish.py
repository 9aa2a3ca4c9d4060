"""The finish of a chunk's answered calls: ONE transaction for all of them (issue 21).

Owns: `finish_answers`. In one transaction: every answered job's result (fenced per job:
a superseded claim writes nothing to its job), every attempt row closed (succeeded, or
superseded when the job moved on; billed either way), and the reservations replaced by what
was spent, summed per quota group and window (tenant, batch, the attempts' start). An attempt
the sweeper had given up as lost meanwhile is settled on its own, as `attempt.settle` does.
Then one log line per call. Must not: make calls, decide retries (failed calls never get
here: `attempt.finish_raised` / `check_reply` finish those one by one), or write SQL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy.orm import Session

from core.ledger import chunk_repo, quota_repo
from schemas.job import AttemptOutcome
from workers.answer import Answer
from workers.attempt import finish_tx, log_answer, settle
from workers.run_types import Outcome

if TYPE_CHECKING:
    from workers.runtime import Runtime

_Group = tuple[str, UUID, datetime]  # tenant, batch, the attempts' start (picks the windows)


def finish_answers(rt: Runtime, answers: list[Answer]) -> dict[UUID, Outcome]:
    """Write every answer; each job's outcome (succeeded, or superseded)."""
    if not answers:
        return {}
    won = finish_tx(rt, lambda s: _write(s, answers))
    for a in answers:
        log_answer(a, a.job.claim.id in won)
    return {
        a.job.claim.id: Outcome("succeeded" if a.job.claim.id in won else "superseded")
        for a in answers
    }


def _write(s: Session, answers: list[Answer]) -> set[UUID]:
    finished_at = max(a.after for a in answers)
    won = chunk_repo.complete_jobs(s, [(a.job.claim, a.completion) for a in answers], finished_at)
    closes = [
        (a.job.claim.id, a.job.claim.attempt_no, a.close(a.job.claim.id in won)) for a in answers
    ]
    previous = chunk_repo.close_attempts(s, closes)
    sums: dict[_Group, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for a in answers:
        claim, start = a.job.claim, a.admitted.start
        before = previous.get(claim.id)
        tokens, cost = a.book.usage.total_tokens, a.book.cost_usd
        if before != AttemptOutcome.STARTED.value:  # lost (rare) or already closed
            settle(s, claim, start, before, tokens, cost)
            continue
        group = sums[(claim.tenant, claim.batch_id, start.started_at)]
        group[0] += start.reserved_tokens
        group[1] += start.reserved_usd
        group[2] += tokens
        # an unknown price books the reservation as spent (money is never under-counted)
        group[3] += start.reserved_usd if cost is None else cost
    for (tenant, batch_id, started_at), (rt_, ru, st, su) in sums.items():
        quota_repo.settle(s, tenant, batch_id, started_at, int(rt_), ru, int(st), su)
    return won
