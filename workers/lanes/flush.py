"""The flusher (issue 18): a deployment's pending batch-lane items become one provider batch.

Owns: `flush_once`. Under a Postgres advisory lock (one flusher at a time; a killed one's lock
dies with its connection): first adopt every provider batch whose intent was recorded but whose
provider id was not (a flusher killed mid-create): the provider's list is searched for llmq's
tag and the batch is adopted, or created if it never arrived; then, per deployment whose oldest
pending item waited `flush_after_s` (or that has `max_jobs_per_batch` items), record the intent
(a `provider_batches` row, items moved into it: committed BEFORE the create call), create the
provider batch tagged with that id, and record the provider's id. Must not: apply results
(workers/lanes/poll.py), or write SQL (core/ledger/lanes_repo.py does).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text

from core.errors import LLMProviderError, RequestRejected
from core.ledger import lanes_repo
from core.ledger.db import session_scope
from schemas.job import JobSpec
from workers.providers.base import ProviderRequest
from workers.providers.batch import BatchClient, BatchItem
from workers.routing.lanes import flush_due

if TYPE_CHECKING:
    from workers.runtime import Runtime

log = logging.getLogger(__name__)

FLUSH_LOCK_KEY = 0x6C6C6D71666C73  # "llmqfls"


@dataclass
class FlushCounts:
    created: int = 0
    adopted: int = 0
    items: int = 0
    failed: int = 0
    skipped: bool = False
    requeue: list[uuid.UUID] = field(default_factory=list)


def flush_once(rt: Runtime, now: datetime, *, force: bool = False) -> FlushCounts:
    """One flush pass (`force`: ignore `flush_after_s`, e.g. at the end of a test)."""
    counts = FlushCounts()
    with rt.engine.connect() as lock_conn:
        if rt.engine.dialect.name == "postgresql":
            got = lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": FLUSH_LOCK_KEY})
            if not got.scalar():
                counts.skipped = True
                return counts
        try:
            _adopt_all(rt, now, counts)
            _flush_due(rt, now, counts, force)
        finally:
            if rt.engine.dialect.name == "postgresql":
                lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": FLUSH_LOCK_KEY})
    return counts


def _client(rt: Runtime, deployment: str) -> BatchClient:
    return BatchClient(rt.adapters[deployment])


def _adopt_all(rt: Runtime, now: datetime, counts: FlushCounts) -> None:
    with session_scope(rt.sessions) as s:
        creating = lanes_repo.batches_in(s, ("creating",))
    for row in creating:
        if row.deployment not in rt.adapters:
            continue
        client = _client(rt, row.deployment)
        with session_scope(rt.sessions) as s:
            known = lanes_repo.known_external_ids(s)
        found = client.find_tagged(str(row.id), row.items, known)
        if found is not None:
            with session_scope(rt.sessions) as s:
                lanes_repo.mark_submitted(s, row.id, found.external_id, now)
            counts.adopted += 1
            log.info("provider batch %s adopted (%s)", row.id, found.external_id)
            continue
        _create(rt, row.id, row.deployment, now, counts)


def _flush_due(rt: Runtime, now: datetime, counts: FlushCounts, force: bool) -> None:
    cfg = rt.config.batch_lane
    with session_scope(rt.sessions) as s:
        pending = lanes_repo.pending_by_deployment(s)
    for deployment, n, oldest in pending:
        if deployment not in rt.adapters:
            continue
        age = (now - oldest).total_seconds()
        if not force and not flush_due(n, age, cfg.flush_after_s, cfg.max_jobs_per_batch):
            continue
        limit = min(cfg.max_jobs_per_batch, type(rt.adapters[deployment]).batch_max_items)  # type: ignore[attr-defined]
        while True:
            with session_scope(rt.sessions) as s:
                batch_id = lanes_repo.record_intent(s, deployment, "", limit, now)
                if batch_id is not None:
                    lanes_repo.set_provider(s, batch_id, str(rt.deployments[deployment].provider))
            if batch_id is None:
                break
            _create(rt, batch_id, deployment, now, counts)


def _request(rt: Runtime, item: lanes_repo.ItemRow) -> ProviderRequest:
    claim, dep = item.claim, rt.deployments[item.deployment]
    spec = JobSpec(**claim.spec, custom_id=claim.custom_id or str(claim.id), model=claim.model)
    return ProviderRequest(
        model_id=item.model,
        messages=tuple(spec.messages),
        max_tokens=spec.max_tokens or dep.max_tokens,
        system=spec.system,
        temperature=spec.temperature if spec.temperature is not None else dep.temperature,
        features=spec.features,
    )


def _fitting(
    rt: Runtime, batch_id: uuid.UUID, deployment: str, items: list[BatchItem]
) -> list[BatchItem]:
    """The items within the provider's size limit; the rest go back to pending (the first
    always stays: one request over the limit is the provider's to refuse)."""
    adapter = rt.adapters[deployment]
    limit, total, keep = adapter.batch_max_bytes, 0, []  # type: ignore[attr-defined]
    for item in items:
        total += adapter.batch_body_bytes(item)  # type: ignore[attr-defined]
        if keep and total > limit:
            break
        keep.append(item)
    if len(keep) < len(items):
        with session_scope(rt.sessions) as s:
            lanes_repo.give_back(s, batch_id, [i.custom_id for i in items[len(keep) :]])
    return keep


def _create(
    rt: Runtime, batch_id: uuid.UUID, deployment: str, now: datetime, counts: FlushCounts
) -> None:
    with session_scope(rt.sessions) as s:
        items = lanes_repo.items_of(s, batch_id)
    batch_items = _fitting(
        rt, batch_id, deployment, [BatchItem(i.custom_id, _request(rt, i)) for i in items]
    )
    try:
        status = _client(rt, deployment).create(batch_items, str(batch_id))
    except RequestRejected as exc:
        # The provider refused the batch as a whole: nothing was created; its items go back
        # to routing (the poller's path for a failed batch does exactly that).
        log.warning("provider batch %s refused: %s", batch_id, exc)
        with session_scope(rt.sessions) as s:
            lanes_repo.set_state(s, batch_id, "failed", "refused", now)
        counts.failed += 1
        return
    except LLMProviderError as exc:
        # It may or may not exist now: the intent stays `creating`, and the next flush adopts
        # it by its tag or creates it then.
        log.warning("provider batch %s: create failed, will adopt or retry: %s", batch_id, exc)
        counts.failed += 1
        return
    with session_scope(rt.sessions) as s:
        lanes_repo.mark_submitted(s, batch_id, status.external_id, now)
    counts.created += 1
    counts.items += len(batch_items)
