"""POST /v1/files: a multipart upload streamed into the ledger, never held whole in memory.

Owns: parsing the multipart body as it arrives (python-multipart's push parser), the size
limit (413 as soon as it is passed, or at once from Content-Length), and writing the file's
bytes to `api_file_chunks` in ≤ 1 MiB pieces inside one transaction, so a failed or refused
upload leaves nothing behind. Must not: parse the file's content (batch creation validates
it) or accept parts other than one `file` and the `purpose` field.
"""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from core.ledger import files_repo
from core.ledger.files_repo import CHUNK_BYTES, FileRow
from llmq.serve.errors import ApiError

PURPOSES = ("batch",)  # what an upload may be for; outputs are made by llmq itself
ENVELOPE_SLACK = 64 * 1024  # multipart boundaries, headers and the purpose field
MAX_FIELD_BYTES = 1024


class _Form:
    """python-multipart callbacks: the file part's bytes pile up in `pending` (drained by the
    caller after every network read), small fields land in `fields`."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.pending = bytearray()
        self.file_bytes = 0
        self.file_parts = 0
        self.ended = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._field: str | None = None  # name of the current non-file part
        self._in_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._headers, self._field, self._in_file = {}, None, False
        self._value = bytearray()

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_field, self._header_value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == "file":
            self.file_parts += 1
            if self.file_parts > 1:
                raise ApiError(400, "Only one file may be uploaded per request.", param="file")
            raw = options.get(b"filename", b"upload.jsonl").decode("utf-8", "replace")
            self.filename = (raw.replace("\\", "/").rsplit("/", 1)[-1] or "upload.jsonl")[:255]
            self._in_file = True
        else:
            self._field = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending += data[start:end]
            self.file_bytes += end - start
        elif self._field is not None:
            self._value += data[start:end]
            if len(self._value) > MAX_FIELD_BYTES:
                raise ApiError(400, f"The field '{self._field}' is too long.", param=self._field)

    def _part_end(self) -> None:
        if self._field is not None:
            self.fields[self._field] = self._value.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


class _Writer:
    """One transaction holding the file's row and chunks; used from worker threads in turn."""

    def __init__(self, sessions: sessionmaker[Session], tenant: str) -> None:
        self.sessions, self.tenant = sessions, tenant
        self.session: Session | None = None
        self.tx: SessionTransaction | None = None
        self.file_id: str | None = None
        self.seq = 0
        self.now = datetime.now(UTC)

    def write(self, data: bytes, filename: str) -> None:
        if self.session is None:
            self.session = self.sessions()
            self.tx = self.session.begin()
            self.file_id = files_repo.begin_file(
                self.session, self.tenant, PURPOSES[0], filename, self.now
            )
        for i in range(0, len(data), CHUNK_BYTES):
            assert self.file_id is not None
            files_repo.add_chunk(self.session, self.file_id, self.seq, data[i : i + CHUNK_BYTES])
            self.seq += 1

    def commit(self, rest: bytes, filename: str, size: int, purpose: str) -> FileRow:
        self.write(rest, filename)
        assert self.session is not None and self.tx is not None and self.file_id is not None
        files_repo.finish_file(self.session, self.file_id, size, purpose)
        row = files_repo.get_file(self.session, self.tenant, self.file_id)
        self.tx.commit()
        self.session.close()
        assert row is not None
        return row

    def rollback(self) -> None:
        if self.session is not None:
            self.session.close()  # closing rolls the open transaction back


def _boundary(request: Request) -> bytes:
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(400, "Expected a multipart/form-data body with a 'file' part.")
    return boundary


def _check_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + ENVELOPE_SLACK:
        raise _too_large(limit)


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, f"File too large: the limit is {limit} bytes.", param="file", code="file_too_large"
    )


async def receive_upload(
    request: Request, sessions: sessionmaker[Session], tenant: str, limit: int
) -> FileRow:
    """Stream the request's multipart body into a new file of `tenant`; returns its row.

    Raises:
        ApiError: 400 for a malformed body, a missing file or an unsupported purpose; 413 when
            the file (or the body) passes `limit` bytes.
    """
    boundary = _boundary(request)
    _check_length(request, limit)
    form = _Form()
    parser = MultipartParser(boundary, form.callbacks())  # type: ignore[arg-type]
    writer = _Writer(sessions, tenant)
    received = 0
    try:
        async for data in request.stream():
            received += len(data)
            if received > limit + ENVELOPE_SLACK:
                raise _too_large(limit)
            try:
                parser.write(data)
            except MultipartParseError as exc:
                raise ApiError(400, f"Malformed multipart body: {exc}") from exc
            if form.file_bytes > limit:
                raise _too_large(limit)
            if len(form.pending) >= CHUNK_BYTES:
                await anyio.to_thread.run_sync(writer.write, form.take(), form.filename)
        return await anyio.to_thread.run_sync(_finish, form, writer)
    except BaseException:
        await anyio.to_thread.run_sync(writer.rollback)
        raise


def _finish(form: _Form, writer: _Writer) -> FileRow:
    if not form.ended:
        raise ApiError(400, "Malformed multipart body: it ends before its closing boundary.")
    if form.filename is None:
        raise ApiError(400, "Missing required parameter: 'file'.", param="file")
    purpose = form.fields.get("purpose")
    if purpose is None:
        raise ApiError(400, "Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in PURPOSES:
        raise ApiError(
            400,
            f"Invalid value for 'purpose': {purpose!r}; llmq serve accepts 'batch'.",
            param="purpose",
        )
    return writer.commit(form.take(), form.filename, form.file_bytes, purpose)
