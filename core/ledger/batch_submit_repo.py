"""Submit's half of the batch ledger: the batch row and all its jobs in one bulk insert, and
marking jobs as never sent when publishing fails.

Owns: inserting `batches` and `jobs` rows at submit (COPY on Postgres, executemany on SQLite),
whole or chunk by chunk, paging the new jobs' ids back for publishing, and `clear_enqueued`. Must not: commit or open transactions (every function takes an open
Session, normally inside `core.ledger.db.session_scope`), validate input (`core.jsonl` and the
producer do), publish messages, or import provider code. Reads of a batch live in
`batch_reads_repo`, cancel and resume in `batch_control_repo`.

Conventions:
- A job's `spec` column is `JobSpec.model_dump(mode="json")` minus `custom_id` and `model`
  (those are columns); rebuild with ``JobSpec(**job.spec, custom_id=..., model=...)``.
- `line_no` is the job's 1-based position among the input's job lines: results order by it.
- `enqueued_at` is set at insert for queued jobs (the producer publishes right after commit);
  if publishing fails the producer calls `clear_enqueued`: NULL means "never sent", and the
  sweeper (which ages NULL from `created_at`) re-sends such jobs after `requeue_after_s`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from core.ledger.models import Batch, Job
from schemas.job import BatchState, JobSpec, JobState

COPY_COLUMNS = (
    "id, batch_id, line_no, custom_id, tenant, model, spec, state, attempts, "
    "prompt_tokens, completion_tokens, cost_usd, created_at, enqueued_at, cache_key, deadline"
)
_ID_CHUNK = 5000  # ids per IN (...) list; SQLite caps bound parameters
_NO_SYNC = {"synchronize_session": False}  # bulk UPDATEs: no ORM objects to refresh


@dataclass(frozen=True)
class NewBatch:
    """What `insert_batch_with_jobs` needs to know about the batch besides its jobs."""

    tenant: str
    name: str | None = None
    default_model: str | None = None
    max_cost_usd: Decimal | None = None  # USD, per-batch budget (enforced by quota)
    nightly: bool = False  # jobs start `deferred` for the nightly run
    use_cache: bool = True  # False stores "cache": false in every job spec
    source: str | None = None  # input file path, for people
    deadline: datetime | None = None  # issue 18: its jobs may wait for a batch lane until then


def insert_batch_with_jobs(
    session: Session,
    batch: NewBatch,
    specs: Sequence[JobSpec],
    now: datetime,
    cache_keys: Sequence[str | None] | None = None,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Insert the batch row and one job per spec (in order), in the caller's transaction.

    Every spec must have `model` resolved. Postgres uses COPY; other dialects executemany.
    `cache_keys` (one per spec, from `core.cache_key.keys_for`; None = no key) are stored only
    when the batch uses the cache. Returns the batch id and the job ids in input order.
    """
    batch_id = insert_batch(session, batch, len(specs), now)
    job_ids = insert_jobs(session, batch_id, batch, specs, 1, now, cache_keys)
    return batch_id, job_ids


def set_total_jobs(session: Session, batch_id: uuid.UUID, total_jobs: int) -> None:
    """The batch's job count, once a streamed insert knows it (same transaction)."""
    session.execute(update(Batch).where(Batch.id == batch_id).values(total_jobs=total_jobs))


def insert_batch(session: Session, batch: NewBatch, total_jobs: int, now: datetime) -> uuid.UUID:
    """Insert the batch row only (its jobs follow with `insert_jobs`, same transaction)."""
    batch_id = uuid.uuid4()
    session.execute(
        insert(Batch).values(
            id=batch_id,
            name=batch.name,
            tenant=batch.tenant,
            state=BatchState.ACTIVE.value,
            total_jobs=total_jobs,
            default_model=batch.default_model,
            max_cost_usd=batch.max_cost_usd,
            nightly=batch.nightly,
            use_cache=batch.use_cache,
            source=batch.source,
            created_at=now,
            deadline=batch.deadline,
        )
    )
    return batch_id


def insert_jobs(  # noqa: PLR0913 - a chunk of one batch: where it goes and what it holds
    session: Session,
    batch_id: uuid.UUID,
    batch: NewBatch,
    specs: Sequence[JobSpec],
    first_line_no: int,
    now: datetime,
    cache_keys: Sequence[str | None] | None = None,
    enqueued_at: datetime | None = None,
) -> list[uuid.UUID]:
    """Insert one chunk of a batch's jobs, numbered from `first_line_no`; returns their ids.

    A large file is inserted chunk by chunk in one transaction, so memory holds one chunk
    of specs at a time while the batch stays all-or-nothing. `enqueued_at` (default `now`)
    is when the sweeper starts counting their message's age: a feeder that publishes them
    later passes a time ahead, so the sweeper does not take them for lost meanwhile."""
    state = JobState.DEFERRED if batch.nightly else JobState.QUEUED
    enqueued_at = None if batch.nightly else (enqueued_at or now)
    job_ids = [uuid.uuid4() for _ in specs]
    # --no-cache is stored in every spec too, so a job row alone says whether it may be cached
    stored = specs if batch.use_cache else [s.model_copy(update={"cache": False}) for s in specs]
    keys = cache_keys if cache_keys is not None and batch.use_cache else [None] * len(specs)
    rows = (
        (jid, batch_id, n, s.custom_id, batch.tenant, s.model, s, key)
        for n, (jid, s, key) in enumerate(zip(job_ids, stored, keys, strict=True), first_line_no)
    )
    common = (state.value, 0, 0, 0, Decimal(0), now, enqueued_at)
    if session.get_bind().dialect.name == "postgresql":
        _copy_jobs(session, rows, common, batch.deadline)
    else:
        _executemany_jobs(session, rows, common, batch.deadline)
    return job_ids


def job_ids_after(
    session: Session, batch_id: uuid.UUID, after_line_no: int, limit: int = _ID_CHUNK
) -> list[tuple[int, uuid.UUID]]:
    """(line_no, id) of the batch's jobs after `after_line_no`, in input order, at most
    `limit`: lets the producer publish a large batch page by page after the commit."""
    rows = session.execute(
        select(Job.line_no, Job.id)
        .where(Job.batch_id == batch_id, Job.line_no > after_line_no)
        .order_by(Job.line_no)
        .limit(limit)
    )
    return [(n, jid) for n, jid in rows]


_SPEC_EXCLUDE = {"custom_id", "model"}  # they are columns of their own


def _copy_jobs(
    session: Session,
    rows: Iterator[tuple[Any, ...]],
    common: tuple[Any, ...],
    deadline: datetime | None,
) -> None:
    """COPY into jobs over the session's own connection, so it shares the transaction.
    The spec goes in as JSON text serialised by pydantic-core (one step, in Rust)."""
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY jobs ({COPY_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            spec_json = row[6].model_dump_json(exclude=_SPEC_EXCLUDE)
            copy.write_row((*row[:6], spec_json, *common, row[7], deadline))


def _executemany_jobs(
    session: Session,
    rows: Iterator[tuple[Any, ...]],
    common: tuple[Any, ...],
    deadline: datetime | None,
) -> None:
    """SQLite (embedded mode): Core executemany in chunks; the JSON type serialises specs."""
    names = [c.strip() for c in COPY_COLUMNS.split(",")]
    chunk: list[dict[str, Any]] = []
    for jid, bid, n, cid, tenant, model, spec, key in rows:
        spec_dict = spec.model_dump(mode="json", exclude=_SPEC_EXCLUDE)
        chunk.append(
            dict(
                zip(
                    names,
                    (jid, bid, n, cid, tenant, model, spec_dict, *common, key, deadline),
                    strict=True,
                )
            )
        )
        if len(chunk) >= _ID_CHUNK:
            session.execute(insert(Job.__table__), chunk)
            chunk = []
    if chunk:
        session.execute(insert(Job.__table__), chunk)


def clear_enqueued(
    session: Session,
    batch_id: uuid.UUID,
    job_ids: Sequence[uuid.UUID] | None = None,
    *,
    after_line_no: int | None = None,
) -> None:
    """Mark queued jobs as never sent (publishing failed); the sweeper re-sends them once they
    are older than its `requeue_after_s`, counted from `created_at`. `job_ids` None = every
    queued job of the batch, or those after `after_line_no` when given."""
    base = update(Job).where(Job.batch_id == batch_id, Job.state == JobState.QUEUED.value)
    if job_ids is None and after_line_no is not None:
        base = base.where(Job.line_no > after_line_no)
    if job_ids is None:
        session.execute(base.values(enqueued_at=None), execution_options=_NO_SYNC)
        return
    for i in range(0, len(job_ids), _ID_CHUNK):
        chunk = list(job_ids[i : i + _ID_CHUNK])
        session.execute(
            base.where(Job.id.in_(chunk)).values(enqueued_at=None), execution_options=_NO_SYNC
        )


def latest_batch_for_source(session: Session, source: str) -> uuid.UUID | None:
    """The newest batch submitted from the file `source` (a resolved path), if any: what
    `llmq run --resume` continues."""
    return session.scalar(
        select(Batch.id)
        .where(Batch.source == source)
        .order_by(Batch.created_at.desc(), Batch.id)
        .limit(1)
    )


def unfinished_job_ids(
    session: Session, batch_id: uuid.UUID, after_line_no: int = 0, limit: int = _ID_CHUNK
) -> list[tuple[int, uuid.UUID]]:
    """(line_no, id) of the batch's queued or running jobs after `after_line_no`, in input
    order: the ones an interrupted run left behind (their messages died with its process;
    the claim's conditional UPDATE makes sending them again harmless)."""
    rows = session.execute(
        select(Job.line_no, Job.id)
        .where(
            Job.batch_id == batch_id,
            Job.line_no > after_line_no,
            Job.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)),
        )
        .order_by(Job.line_no)
        .limit(limit)
    )
    return [(n, jid) for n, jid in rows]


def touch_unsent(
    session: Session, batch_id: uuid.UUID, after_line_no: int, until: datetime
) -> None:
    """Set `enqueued_at` to `until` on the batch's queued jobs after `after_line_no`: jobs a
    feeder will publish, which the sweeper must not take for lost messages meanwhile.
    If the feeder stops touching them, they age and the sweeper sends them after all."""
    session.execute(
        update(Job)
        .where(
            Job.batch_id == batch_id,
            Job.line_no > after_line_no,
            Job.state == JobState.QUEUED.value,
        )
        .values(enqueued_at=until),
        execution_options=_NO_SYNC,
    )
