"""The HTTP routes: OpenAI's Files and Batches endpoints, /v1/chat/completions and /health.

Owns: paths, parameters and response shapes only; the work is in `upload`, `batches` and
`chat`. Every /v1 route needs a key (`state.api_key`, resolved by `tenant_of` in the route's own thread); objects of other tenants answer 404.
Blocking ledger work runs in plain `def` routes (FastAPI's thread pool); the upload and the
chat wait are `async` so they hold no thread while bytes or a job are on their way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import text

from core.ledger import files_repo
from core.ledger.db import session_scope
from llmq.serve import batches, chat, objects
from llmq.serve.errors import ApiError, not_found
from llmq.serve.state import ServeState, api_key, get_state, tenant_of
from llmq.serve.upload import receive_upload

router = APIRouter()
Key = Annotated[str, Depends(api_key)]
State = Annotated[ServeState, Depends(get_state)]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("/health")
def health(state: State) -> dict[str, str]:
    """Liveness and database reachability (no key needed)."""
    with session_scope(state.sessions) as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}


# --- files --------------------------------------------------------------------------------


@router.post("/v1/files")
async def create_file(request: Request, state: State, key: Key) -> dict[str, Any]:
    who = await anyio.to_thread.run_sync(tenant_of, state, key)
    row = await receive_upload(request, state.sessions, who, state.settings.max_upload_bytes)
    return objects.file_object(row)


@router.get("/v1/files")
def list_files(
    state: State,
    key: Key,
    purpose: str | None = None,
    limit: Limit = 100,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    who = tenant_of(state, key)
    with session_scope(state.sessions) as session:
        rows, more = files_repo.list_files(session, who, limit, after, purpose, order == "desc")
    return objects.list_object([objects.file_object(r) for r in rows], more)


@router.get("/v1/files/{file_id}")
def get_file(file_id: str, state: State, key: Key) -> dict[str, Any]:
    who = tenant_of(state, key)
    with session_scope(state.sessions) as session:
        row = files_repo.get_file(session, who, file_id)
    if row is None:
        raise not_found("File", file_id)
    return objects.file_object(row)


@router.get("/v1/files/{file_id}/content")
def get_file_content(file_id: str, state: State, key: Key) -> StreamingResponse:
    who = tenant_of(state, key)
    with session_scope(state.sessions) as session:
        row = files_repo.get_file(session, who, file_id)
    if row is None:
        raise not_found("File", file_id)
    headers = {"Content-Length": str(row.bytes)}
    return StreamingResponse(
        _content(state, file_id), media_type="application/octet-stream", headers=headers
    )


def _content(state: ServeState, file_id: str) -> Iterator[bytes]:
    """Streamed chunk by chunk (Starlette iterates this in its thread pool)."""
    with session_scope(state.sessions) as session:
        yield from files_repo.iter_content(session, file_id)


@router.delete("/v1/files/{file_id}")
def delete_file(file_id: str, state: State, key: Key) -> dict[str, Any]:
    who = tenant_of(state, key)
    with session_scope(state.sessions) as session:
        deleted = files_repo.delete_file(session, who, file_id, datetime.now(UTC))
    if not deleted:
        raise not_found("File", file_id)
    return {"id": file_id, "object": "file", "deleted": True}


# --- batches ------------------------------------------------------------------------------


@router.post("/v1/batches")
def create_batch(body: batches.CreateBatch, state: State, key: Key) -> dict[str, Any]:
    who = tenant_of(state, key)
    return batches.create(state, who, body)


@router.get("/v1/batches")
def list_batches(
    state: State, key: Key, limit: Limit = 20, after: str | None = None
) -> dict[str, Any]:
    who = tenant_of(state, key)
    return batches.list_batches(state, who, limit, after)


@router.get("/v1/batches/{batch_id}")
def get_batch(batch_id: str, state: State, key: Key) -> dict[str, Any]:
    who = tenant_of(state, key)
    return batches.retrieve(state, who, batch_id)


@router.post("/v1/batches/{batch_id}/cancel")
def cancel_batch(batch_id: str, state: State, key: Key) -> dict[str, Any]:
    who = tenant_of(state, key)
    return batches.cancel(state, who, batch_id)


# --- chat ---------------------------------------------------------------------------------


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, state: State, key: Key) -> dict[str, Any]:
    who = await anyio.to_thread.run_sync(tenant_of, state, key)
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "The request body is not valid JSON.") from exc
    spec = chat.validate(state, body)
    return await chat.complete(state, who, spec, request)
