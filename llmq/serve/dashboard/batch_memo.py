"""Figures of finished batches, kept per process: a batch whose every job is terminal and
whose last job finished over an hour ago can no longer change (no call outlives that: a
superseded call still in flight would be within its timeout), so its cost and its page's
aggregates are read once.

Owns: `FrozenMemo` (bounded, thread-safe) and the batch reads that use it
(`batch_list`, `batch_page`). Active or recently finished batches are always read live, so
every figure shown equals `llmq status` at that moment. Must not: keep anything per viewer
(callers check visibility before reading) or write anything.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.ledger import batch_reads_repo
from core.ledger import dashboard_reads_repo as repo

FROZEN_AFTER = timedelta(hours=1)
MAX_ENTRIES = 4096


class FrozenMemo:
    def __init__(self) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > MAX_ENTRIES:
                self._items.popitem(last=False)


def _frozen(done: int, total: int, last: datetime | None, now: datetime) -> bool:
    return done == total and (last is None or last < now - FROZEN_AFTER)


def batch_list(
    memo: FrozenMemo, session: Session, tenant: str | None, now: datetime
) -> list[repo.BatchListRow]:
    """The newest batches with live job counts; the attempts' cost is summed only for
    batches not frozen (and remembered once they are)."""
    batches = repo.newest_batches(session, tenant)
    counts = repo.job_counts(session, [b.id for b in batches])
    costs = {b.id: memo.get(("cost", b.id)) for b in batches}
    costs |= repo.attempt_costs(session, [bid for bid, c in costs.items() if c is None])
    rows = []
    for b in batches:
        done, failed, last = counts.get(b.id, (0, 0, None))
        if _frozen(done, b.total_jobs, last, now):
            memo.put(("cost", b.id), costs[b.id])
        rows.append(repo.list_row(b, done, failed, costs.get(b.id) or repo.ZERO))
    return rows


def batch_page(memo: FrozenMemo, session: Session, batch_id: uuid.UUID, now: datetime) -> Any:
    """(status, cost per model, slowest jobs, costliest jobs) of one batch."""
    kept = memo.get(("page", batch_id))
    if kept is not None:
        return kept
    status = batch_reads_repo.batch_status(session, batch_id)
    assert status is not None  # the caller read its owner in the same transaction
    figures = (
        status,
        repo.cost_by_model(session, batch_id),
        repo.top_jobs(session, batch_id, "time"),
        repo.top_jobs(session, batch_id, "cost"),
    )
    if status.done == status.total and _frozen(
        status.done, status.total, repo.last_finished(session, batch_id), now
    ):
        memo.put(("page", batch_id), figures)
    return figures
