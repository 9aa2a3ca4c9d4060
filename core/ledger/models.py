"""SQLAlchemy 2 typed models: the ledger's tables. The schema changes only via Alembic.

Owns: table definitions. Must not: do I/O (queries live in the ledger's repo modules).
Types are portable (Postgres in production, SQLite for the embedded mode): money is
NUMERIC, ids are UUIDs, JSON columns hold job specs, results and errors.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(18, 8)  # USD; 8 decimals keep per-token prices exact
TS = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Batch(Base):
    __tablename__ = "batches"
    __table_args__ = (
        # the dashboard's batch list, newest first: every tenant (admin) or one
        Index("ix_batches_created_at", "created_at"),
        Index("ix_batches_tenant_created", "tenant", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str | None] = mapped_column(String(200))
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    total_jobs: Mapped[int] = mapped_column(Integer)
    default_model: Mapped[str | None] = mapped_column(String(200))
    max_cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    nightly: Mapped[bool] = mapped_column(Boolean, default=False)
    use_cache: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str | None] = mapped_column(Text)  # input file path, for people
    created_at: Mapped[datetime] = mapped_column(TS)
    finished_at: Mapped[datetime | None] = mapped_column(TS)
    # issue 18: when its jobs must be done (`--deadline`, completion_window); None = no deadline
    deadline: Mapped[datetime | None] = mapped_column(TS)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id"),
        Index("ix_jobs_batch_line", "batch_id", "line_no"),
        Index("ix_jobs_state_not_before", "state", "not_before"),
        Index("ix_jobs_cache_key", "cache_key", "finished_at"),
        Index("ix_jobs_worker_state", "worker_id", "state"),
        Index("ix_jobs_tenant", "tenant"),  # dashboard: spend of one tenant
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    custom_id: Mapped[str] = mapped_column(String(256))
    tenant: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))  # requested model name
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # JobSpec minus custom_id/model
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)  # claims so far = fence
    lease_until: Mapped[datetime | None] = mapped_column(TS)
    # the worker process (workers.id) whose heartbeat renews this job's lease; None = a claim
    # made without a heartbeat (embedded mode, tests), which holds the full settings.lease_s
    worker_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    not_before: Mapped[datetime | None] = mapped_column(TS)  # do not run before (backoff)
    enqueued_at: Mapped[datetime | None] = mapped_column(TS)  # last message sent
    created_at: Mapped[datetime] = mapped_column(TS)
    finished_at: Mapped[datetime | None] = mapped_column(TS)
    cache_key: Mapped[str | None] = mapped_column(String(64))
    # the outcome, filled by the finishing transaction
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # text, finish_reason, ...
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # ErrorRecord
    provider: Mapped[str | None] = mapped_column(String(16))  # final provider
    served_model: Mapped[str | None] = mapped_column(String(200))  # final provider model id
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    routing_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # excluded deployments
    # issue 18: the job may wait for a provider batch lane until then; None = sync lane only
    deadline: Mapped[datetime | None] = mapped_column(TS)


class Worker(Base):
    """A worker process that renews its jobs' leases by heartbeat (workers/heartbeat.py).

    No foreign key from jobs.worker_id: a claim never waits for this row, and the sweeper
    deletes long-dead rows while their jobs keep the id as history.
    """

    __tablename__ = "workers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(TS)
    last_heartbeat: Mapped[datetime] = mapped_column(TS, index=True)


class Attempt(Base):
    """One provider call (or cache hit) and the tenant it charged; result text is the job's."""

    __tablename__ = "attempts"
    __table_args__ = (
        # time ranges (spend per day, the last hour): rows arrive in start order, so a BRIN
        # index serves them for a few KB instead of a b-tree's ~20 B per row
        Index(
            "ix_attempts_started_at_brin",
            "started_at",
            postgresql_using="brin",
            postgresql_with={"autosummarize": "on"},  # each filled range summarized at once
        ),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    attempt_no: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))  # provider model id
    deployment: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))  # AttemptOutcome
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    error_kind: Mapped[str | None] = mapped_column(String(24))
    error_message: Mapped[str | None] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(TS)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    waited_ms: Mapped[int] = mapped_column(Integer, default=0)  # backoff before this attempt
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)  # ⊂ prompt; NULL = 0 (no bytes)
    cache_write_tokens: Mapped[int | None] = mapped_column(Integer)  # ⊂ prompt; NULL = 0
    reasoning_tokens: Mapped[int | None] = mapped_column(Integer)  # ⊂ completion; NULL = 0
    tenant: Mapped[str] = mapped_column(String(100))  # charged at the time of the call
    cost_usd: Mapped[Decimal | None] = mapped_column(Money)  # None = price unknown
    reserved_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    reserved_tokens: Mapped[int] = mapped_column(Integer, default=0)
    saved_usd: Mapped[Decimal | None] = mapped_column(Money)  # cache hits: cost avoided
    # cache hits (issue 11): tokens the reused call used, and the job whose result was reused
    saved_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_from: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    request_id: Mapped[str | None] = mapped_column(String(100))
    # issue 18: "batch" for an item of a provider batch (None = the sync lane), the provider's
    # id of that batch, and what the call would have cost on the sync lane (for "saved")
    lane: Mapped[str | None] = mapped_column(String(8))
    provider_batch_id: Mapped[str | None] = mapped_column(String(200))
    sync_cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    # issue 17: the provider reported no usage (e.g. Gemini embeddings): the tokens booked are
    # llmq's estimate, never 0
    usage_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ProviderBatch(Base):
    """One provider batch (issue 18). The row is written BEFORE the provider's create call
    (state `creating`, `id` = llmq's own id, which tags the provider batch), so a flusher that
    dies mid-create is followed by one that adopts the batch instead of creating it again."""

    __tablename__ = "provider_batches"
    __table_args__ = (Index("ix_provider_batches_state", "state", "deployment"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(200))  # the provider's batch id
    state: Mapped[str] = mapped_column(String(16))  # creating | open | cancelling | done
    provider_status: Mapped[str | None] = mapped_column(String(40))  # as the provider says
    items: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TS)
    submitted_at: Mapped[datetime | None] = mapped_column(TS)
    polled_at: Mapped[datetime | None] = mapped_column(TS)
    ended_at: Mapped[datetime | None] = mapped_column(TS)


class ProviderBatchItem(Base):
    """One job attempt routed to a batch lane: pending (no provider batch yet), then in one."""

    __tablename__ = "provider_batch_items"
    __table_args__ = (
        Index("ix_provider_batch_items_pending", "deployment", "provider_batch"),
        Index("ix_provider_batch_items_batch", "provider_batch"),
    )

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    attempt_no: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200))
    provider_batch: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("provider_batches.id", ondelete="SET NULL")
    )
    custom_id: Mapped[str] = mapped_column(String(64))
    deadline: Mapped[datetime] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS)
    state: Mapped[str] = mapped_column(String(16))  # pending | sent | done


class JobVectors(Base):
    """A succeeded embedding job's vectors (issue 17): `count` vectors of `dims` float32
    values, little-endian, in input order (`core.vectors`); 4 bytes a dimension, not JSON."""

    __tablename__ = "job_vectors"

    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    dims: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class QuotaLimit(Base):
    """A tenant's configured limit for one period ('day' or 'month'). NULL = unlimited."""

    __tablename__ = "quota_limits"

    tenant: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(8), primary_key=True)
    limit_usd: Mapped[Decimal | None] = mapped_column(Money)
    limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(TS)


class BudgetWindow(Base):
    """Spend counters for one scope and window; reservations are taken here atomically."""

    __tablename__ = "budget_windows"
    __table_args__ = (UniqueConstraint("scope", "period", "window_start"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(140))  # "tenant:<t>" or "batch:<uuid>"
    period: Mapped[str] = mapped_column(String(8))  # day | month | batch
    window_start: Mapped[date] = mapped_column(Date)
    limit_usd: Mapped[Decimal | None] = mapped_column(Money)
    limit_tokens: Mapped[int | None] = mapped_column(BigInteger)
    spent_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    spent_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    reserved_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class NightlyRun(Base):
    """One row per (run name, UTC date): the exactly-once guard and the run's progress."""

    __tablename__ = "nightly_runs"
    __table_args__ = (UniqueConstraint("name", "run_date"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    run_date: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))  # running | done
    phase: Mapped[str | None] = mapped_column(String(32))  # where a resumed run picks up
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    started_at: Mapped[datetime] = mapped_column(TS)
    finished_at: Mapped[datetime | None] = mapped_column(TS)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class InboxFile(Base):
    """An inbox file seen by a nightly run; the content hash keeps it from being ingested twice."""

    __tablename__ = "inbox_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # ingested | rejected
    batch_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(TS, server_default=text("CURRENT_TIMESTAMP"))


class NightlyRunJob(Base):
    """A job a nightly run picked up, and why: the run's report scope, and (source 'retry')
    how many times nightly runs have re-run a failed job, across nights."""

    __tablename__ = "nightly_run_jobs"

    run_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("nightly_runs.id", ondelete="CASCADE"),
        primary_key=True,
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    source: Mapped[str] = mapped_column(String(16))  # inbox | deferred | parked | retry
    from_tenant: Mapped[str] = mapped_column(String(100))  # the job's tenant before the run


# --- `llmq serve` (issue 16): API keys, uploaded/produced files, OpenAI batch objects --------


class ApiKey(Base):
    """An API key of `llmq serve`. Only its SHA-256 is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # key_<hex>
    tenant: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the key
    created_at: Mapped[datetime] = mapped_column(TS)
    # sees every tenant in the dashboard (`llmq keys create --admin`); the API stays per tenant
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    revoked_at: Mapped[datetime | None] = mapped_column(TS)


class ApiFile(Base):
    """A file of the OpenAI Files API: an uploaded batch input or a batch's output/error file.
    Its bytes live in `api_file_chunks`, so every replica of `llmq serve` can read them."""

    __tablename__ = "api_files"
    __table_args__ = (Index("ix_api_files_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # file-<hex>
    tenant: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(String(32))  # batch | batch_output
    filename: Mapped[str] = mapped_column(String(255))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(TS)
    used_by: Mapped[str | None] = mapped_column(String(40))  # the batch that consumed it
    deleted_at: Mapped[datetime | None] = mapped_column(TS)


class ApiFileChunk(Base):
    """One piece (≤ 1 MiB) of a file's content, in order."""

    __tablename__ = "api_file_chunks"

    file_id: Mapped[str] = mapped_column(
        ForeignKey("api_files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ApiBatch(Base):
    """An OpenAI batch object over a ledger batch. `status` is stored once it is final (or
    while cancelling); in between, the API derives it from the ledger's job counts."""

    __tablename__ = "api_batches"
    __table_args__ = (Index("ix_api_batches_tenant_created", "tenant", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # batch_<hex>
    tenant: Mapped[str] = mapped_column(String(100))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL")
    )  # None when validation failed (nothing was stored)
    input_file_id: Mapped[str] = mapped_column(String(40))
    endpoint: Mapped[str] = mapped_column(String(64))
    completion_window: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the caller's `metadata`
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # validation errors
    final: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # counts + usage, frozen
    output_file_id: Mapped[str | None] = mapped_column(String(40))
    error_file_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(TS)
    expires_at: Mapped[datetime] = mapped_column(TS)
    in_progress_at: Mapped[datetime | None] = mapped_column(TS)
    finalizing_at: Mapped[datetime | None] = mapped_column(TS)
    completed_at: Mapped[datetime | None] = mapped_column(TS)
    failed_at: Mapped[datetime | None] = mapped_column(TS)
    cancelling_at: Mapped[datetime | None] = mapped_column(TS)
    cancelled_at: Mapped[datetime | None] = mapped_column(TS)
    expired_at: Mapped[datetime | None] = mapped_column(TS)
