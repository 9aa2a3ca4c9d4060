"""Files of `llmq serve` (OpenAI Files API): metadata in `api_files`, bytes in `api_file_chunks`.

Owns: those two tables, and the newest-first cursor pagination the API's lists share. Uploads
arrive chunk by chunk inside one transaction (nothing is visible until it commits); reads stream
chunk by chunk, so no file is ever held in memory whole. Must not: commit (callers pass an open
Session), parse file contents, or know about HTTP.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from core.ledger.models import ApiFile, ApiFileChunk

CHUNK_BYTES = 1 << 20  # 1 MiB per stored chunk


@dataclass(frozen=True)
class FileRow:
    id: str
    tenant: str
    purpose: str
    filename: str
    bytes: int
    created_at: datetime
    used_by: str | None


def _row(f: ApiFile) -> FileRow:
    return FileRow(f.id, f.tenant, f.purpose, f.filename, f.bytes, f.created_at, f.used_by)


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def begin_file(session: Session, tenant: str, purpose: str, filename: str, now: datetime) -> str:
    """Insert an empty file row (its size is set by `finish_file`); returns its id."""
    file_id = new_file_id()
    session.add(
        ApiFile(
            id=file_id, tenant=tenant, purpose=purpose, filename=filename, bytes=0, created_at=now
        )
    )
    session.flush()
    return file_id


def add_chunk(session: Session, file_id: str, seq: int, data: bytes) -> None:
    session.add(ApiFileChunk(file_id=file_id, seq=seq, data=data))
    session.flush()


def finish_file(session: Session, file_id: str, size: int, purpose: str | None = None) -> None:
    """Record the final size in bytes (and the purpose, when known only at the end)."""
    values: dict[str, Any] = {"bytes": size}
    if purpose is not None:
        values["purpose"] = purpose
    session.execute(
        update(ApiFile).where(ApiFile.id == file_id).values(**values),
        execution_options={"synchronize_session": False},
    )


class FileWriter:
    """A file written piece by piece in the caller's transaction, re-chunked to CHUNK_BYTES.
    The row is created on the first byte: a writer that gets none leaves no file (id None)."""

    def __init__(
        self, session: Session, tenant: str, purpose: str, filename: str, now: datetime
    ) -> None:
        self.session, self.tenant, self.purpose = session, tenant, purpose
        self.filename, self.now = filename, now
        self.file_id: str | None = None
        self.size = 0
        self._buf = bytearray()
        self._seq = 0

    def write(self, piece: bytes) -> None:
        if self.file_id is None:
            self.file_id = begin_file(
                self.session, self.tenant, self.purpose, self.filename, self.now
            )
        self._buf += piece
        self.size += len(piece)
        while len(self._buf) >= CHUNK_BYTES:
            self._flush(CHUNK_BYTES)

    def close(self) -> str | None:
        """Store what is left and the size; returns the file id (None: nothing written)."""
        if self.file_id is None:
            return None
        if self._buf:
            self._flush(len(self._buf))
        finish_file(self.session, self.file_id, self.size)
        return self.file_id

    def _flush(self, n: int) -> None:
        assert self.file_id is not None
        add_chunk(self.session, self.file_id, self._seq, bytes(self._buf[:n]))
        del self._buf[:n]
        self._seq += 1


def write_file(
    session: Session,
    tenant: str,
    purpose: str,
    filename: str,
    pieces: Iterable[bytes],
    now: datetime,
) -> tuple[str | None, int]:
    """Store a whole file from `pieces`; returns (id, bytes), id None when there were none."""
    writer = FileWriter(session, tenant, purpose, filename, now)
    for piece in pieces:
        writer.write(piece)
    return writer.close(), writer.size


def get_file(session: Session, tenant: str, file_id: str) -> FileRow | None:
    """The tenant's live (undeleted) file, or None: another tenant's file does not exist."""
    f = session.scalar(
        select(ApiFile).where(
            ApiFile.id == file_id, ApiFile.tenant == tenant, ApiFile.deleted_at.is_(None)
        )
    )
    return _row(f) if f is not None else None


def iter_content(session: Session, file_id: str) -> Iterator[bytes]:
    """The file's bytes, one stored chunk at a time, in order."""
    seqs = session.scalars(
        select(ApiFileChunk.seq).where(ApiFileChunk.file_id == file_id).order_by(ApiFileChunk.seq)
    ).all()
    for seq in seqs:
        yield (
            session.scalar(
                select(ApiFileChunk.data).where(
                    ApiFileChunk.file_id == file_id, ApiFileChunk.seq == seq
                )
            )
            or b""
        )


def delete_file(session: Session, tenant: str, file_id: str, now: datetime) -> bool:
    """Mark the file deleted and drop its bytes; False when the tenant has no such file."""
    result = session.execute(
        update(ApiFile)
        .where(ApiFile.id == file_id, ApiFile.tenant == tenant, ApiFile.deleted_at.is_(None))
        .values(deleted_at=now),
        execution_options={"synchronize_session": False},
    )
    if not result.rowcount:
        return False
    session.execute(delete(ApiFileChunk).where(ApiFileChunk.file_id == file_id))
    return True


def claim_for_batch(session: Session, tenant: str, file_id: str, batch_id: str) -> bool:
    """Mark an unused batch-input file as consumed by `batch_id` (a conditional UPDATE, so two
    concurrent creates cannot both use it). False if it is missing, used, or of another purpose."""
    result = session.execute(
        update(ApiFile)
        .where(
            ApiFile.id == file_id,
            ApiFile.tenant == tenant,
            ApiFile.deleted_at.is_(None),
            ApiFile.purpose == "batch",
            ApiFile.used_by.is_(None),
        )
        .values(used_by=batch_id),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)


def list_files(  # noqa: PLR0913 - OpenAI's list parameters, one each
    session: Session,
    tenant: str,
    limit: int,
    after: str | None,
    purpose: str | None = None,
    newest_first: bool = True,
) -> tuple[list[FileRow], bool]:
    """The tenant's files after the cursor id (newest first unless told otherwise);
    returns (page, has_more)."""
    where = [ApiFile.tenant == tenant, ApiFile.deleted_at.is_(None)]
    if purpose:
        where.append(ApiFile.purpose == purpose)
    rows, more = page(session, ApiFile, where, limit, after, newest_first)
    return [_row(f) for f in rows], more


def page(  # noqa: PLR0913 - the query, the cursor and the order
    session: Session,
    model: Any,
    where: list[Any],
    limit: int,
    after: str | None,
    newest_first: bool = True,
) -> tuple[list[Any], bool]:
    """Cursor pagination over (created_at, id) of `model`, newest first by default, shared by
    the API's lists. An `after` id that is not in `where` gives an empty page."""
    stmt = select(model).where(*where)
    if after:
        anchor = session.execute(
            select(model.created_at, model.id).where(*where, model.id == after)
        ).first()
        if anchor is None:
            return [], False
        key, at = tuple_(model.created_at, model.id), tuple_(*anchor)
        stmt = stmt.where(key < at if newest_first else key > at)
    if newest_first:
        stmt = stmt.order_by(model.created_at.desc(), model.id.desc())
    else:
        stmt = stmt.order_by(model.created_at, model.id)
    stmt = stmt.limit(limit + 1)
    rows = list(session.scalars(stmt))
    return rows[:limit], len(rows) > limit
