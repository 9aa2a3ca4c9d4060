"""Withdrawing an admission whose call was never sent.

Owns: `withdraw_attempt`, the one write that undoes what `jobs_repo.start_attempt` and
`quota_repo.reserve` did in an admission's transaction, for a call that will not be made (the
deployment started cooling down between the reservation and the call: issue 20, item 12).
Must not: open or commit transactions (the caller passes a session inside `session_scope`),
or touch the job row (the claim stays; the caller then waits or tries another deployment).
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from core.ledger import quota_repo
from core.ledger.jobs_repo import AttemptStart, ClaimedJob
from core.ledger.models import Attempt
from schemas.job import AttemptOutcome

_attempts = Attempt.__table__


def withdraw_attempt(session: Session, claim: ClaimedJob, start: AttemptStart) -> bool:
    """Delete the claim's still-`started` attempt row and release its reservation, as if the
    admission's transaction had rolled back. False = the row is gone or closed already (the
    sweeper marked it lost and released it), and nothing is released twice."""
    gone = session.execute(
        delete(_attempts)
        .where(
            _attempts.c.job_id == claim.id,
            _attempts.c.attempt_no == claim.attempt_no,
            _attempts.c.outcome == AttemptOutcome.STARTED.value,
        )
        .returning(_attempts.c.attempt_no)
    ).one_or_none()
    if gone is None:
        return False
    quota_repo.release(
        session,
        claim.tenant,
        claim.batch_id,
        start.started_at,
        start.reserved_tokens,
        start.reserved_usd,
    )
    return True
