"""Embedding vectors in the ledger (issue 17): written with the job's result, read with it.

Owns: `store` (a succeeded embedding job's packed float32 vectors, in the finishing
transaction, only when the fenced finish won), `copy` (a cache hit gets the entry's vectors)
and `columns` (what `batch_reads_repo` joins to read them). Must not: pack or unpack vectors
(`core.vectors` does), decide anything, or open or commit transactions (the caller passes a
session inside `session_scope`).

Works on Postgres and on SQLite (the embedded mode): plain INSERT / DELETE / SELECT.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, literal, select
from sqlalchemy.orm import Session

from core.ledger.models import JobVectors

_vectors = JobVectors.__table__


def store(session: Session, job_id: uuid.UUID, data: bytes, dims: int, count: int) -> None:
    """Keep `count` vectors of `dims` floats (packed by `core.vectors.pack`) for `job_id`,
    replacing any earlier row (a job finishes once; a re-run after a reset may finish again)."""
    conn = session.connection()
    conn.execute(delete(_vectors).where(_vectors.c.job_id == job_id))
    conn.execute(insert(_vectors).values(job_id=job_id, dims=dims, count=count, data=data))


def copy(session: Session, source_job_id: uuid.UUID, job_id: uuid.UUID) -> bool:
    """Give `job_id` the vectors of `source_job_id` (a cache hit); False when it has none."""
    conn = session.connection()
    conn.execute(delete(_vectors).where(_vectors.c.job_id == job_id))
    rows = select(literal(job_id, _vectors.c.job_id.type), _vectors.c.dims, _vectors.c.count,
                  _vectors.c.data).where(_vectors.c.job_id == source_job_id)  # fmt: skip
    stmt = insert(_vectors).from_select(["job_id", "dims", "count", "data"], rows)
    return conn.execute(stmt).rowcount == 1
