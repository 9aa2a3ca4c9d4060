"""The poller (issue 18): open provider batches are polled and their results applied.

Owns: `poll_once`. For each open provider batch due a poll (`poll_s` since the last): ask its
status; an ended one's results are downloaded and every item still waiting is applied
(workers/lanes/apply.py: a result, an item error, or "never ran" back to routing); a failed
one's items all go back to routing; one still running whose earliest item deadline is within
`margin_s` is cancelled (its finished items still come back with the results, the rest go to
the sync lane). A poller killed midway leaves the batch open with some items applied: the next
poll applies only the items still waiting, and the fence makes a second application a no-op.
Must not: create provider batches (flush.py) or write SQL.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from core.errors import LLMProviderError
from core.ledger import lanes_repo
from core.ledger.db import session_scope
from workers.lanes.apply import apply_item
from workers.providers.batch import BatchClient, BatchStatus, ItemResult
from workers.routing.lanes import pull_back_at

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class PollCounts:
    polled: int = 0
    ended: int = 0
    cancelled: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    requeued: list[uuid.UUID] = field(default_factory=list)


POLL_LOCK_KEY = 0x6C6C6D71706F6C  # "llmqpol"


def poll_once(rt: Runtime, now: datetime, *, force: bool = False) -> PollCounts:
    """One poll pass under an advisory lock (a second poller at the same time skips: it would
    only download the same results; applying them twice is harmless anyway, by the fence)."""
    pg = rt.engine.dialect.name == "postgresql"
    with rt.engine.connect() as lock_conn:
        if (
            pg
            and not lock_conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": POLL_LOCK_KEY}
            ).scalar()
        ):
            return PollCounts()
        try:
            return _poll_all(rt, now)
        finally:
            if pg:
                lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": POLL_LOCK_KEY})


def _poll_all(rt: Runtime, now: datetime) -> PollCounts:
    counts = PollCounts()
    with session_scope(rt.sessions) as s:
        rows = lanes_repo.batches_in(s, ("open", "cancelling", "failed"))
    for row in rows:
        if row.deployment not in rt.adapters:
            continue
        if row.state == "failed":  # refused at create: nothing to poll
            _apply_all(rt, row, None, "refused", now, counts)
            continue
        try:
            _poll(rt, row, now, counts)
        except LLMProviderError as exc:
            log.warning("provider batch %s: poll failed, next time: %s", row.id, exc)
    return counts


def _poll(rt: Runtime, row: lanes_repo.BatchRow, now: datetime, counts: PollCounts) -> None:
    assert row.external_id is not None
    client = BatchClient(rt.adapters[row.deployment])
    status = client.get(row.external_id)
    counts.polled += 1
    if status.phase == "in_progress":
        margin = rt.config.batch_lane.margin_s
        near = row.earliest_deadline is not None and now >= pull_back_at(
            row.earliest_deadline, margin
        )
        state = row.state
        if near and row.state == "open":
            client.cancel(row.external_id)
            state = "cancelling"
            counts.cancelled += 1
            log.info("provider batch %s cancelled: an item's deadline is near", row.id)
        with session_scope(rt.sessions) as s:
            lanes_repo.set_state(s, row.id, state, status.raw_status, now)
        return
    _apply_all(rt, row, status, status.raw_status, now, counts, client)


def _apply_all(  # noqa: PLR0913
    rt: Runtime,
    row: lanes_repo.BatchRow,
    status: BatchStatus | None,
    why: str,
    now: datetime,
    counts: PollCounts,
    client: BatchClient | None = None,
) -> None:
    results: dict[str, ItemResult] = {}
    if status is not None and status.phase == "ended" and client is not None:
        results = {r.custom_id: r for r in client.results(status)}
    with session_scope(rt.sessions) as s:
        items = lanes_repo.items_of(s, row.id)
    for item in items:  # only this batch's items: a foreign custom_id is never applied
        what = apply_item(rt, item, results.get(item.custom_id), why, now)
        counts.applied[what] = counts.applied.get(what, 0) + 1
        if what == "requeued":
            counts.requeued.append(item.claim.id)
    with session_scope(rt.sessions) as s:
        lanes_repo.set_state(s, row.id, "done", why, now)
    counts.ended += 1
