"""POST /v1/chat/completions (non-streaming): one job through llmq's queue, answered when done.

Owns: turning the request body into a one-job batch (validated by the same rules as an OpenAI
Batch input line), waiting for the job in the ledger without holding a thread, and mapping its
outcome to a `chat.completion` or an OpenAI error. The job runs like any other: routing,
fallback, quota reservation, the response cache and the ledger. A job parked by the tenant's
quota, a caller that goes away, or the timeout cancels the job rather than leave it behind.
Must not: call a provider itself or write SQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import Request

from core import cache_key, jsonl
from core.ledger import batch_control_repo, batch_reads_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from llmq.serve.errors import ApiError
from llmq.serve.state import ServeState
from producer.openai_format import chat_completion
from producer.submit import EnqueueFailed, store_and_enqueue
from schemas.job import JobSpec

CUSTOM_ID = "chat.completion"
TERMINAL = ("succeeded", "failed", "cancelled")
# a failed job's ErrorKind -> (HTTP status, OpenAI error type)
STATUS_FOR = {
    "bad_request": (400, "invalid_request_error"),
    "context_too_long": (400, "invalid_request_error"),
    "content_filtered": (400, "invalid_request_error"),
    "quota_exceeded": (429, "insufficient_quota"),
    "rate_limited": (429, "rate_limit_error"),
}


def validate(state: ServeState, body: Any) -> JobSpec:
    """The body as a job spec, by the rules of an OpenAI Batch line; 400 with the reason."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    line = {"custom_id": CUSTOM_ID, "method": "POST", "url": "/v1/chat/completions", "body": body}
    try:
        [spec] = jsonl.parse_lines(
            [(1, json.dumps(line))], state.config, capabilities=state.capabilities
        )
    except jsonl.InputError as exc:
        reason = exc.errors[0].removeprefix("line 1: ") if exc.errors else "invalid request"
        raise ApiError(400, reason.removeprefix("body.")) from exc
    return spec


def _submit(state: ServeState, tenant: str, spec: JobSpec) -> uuid.UUID:
    keys = cache_key.keys_for([spec], state.config, tenant=tenant)
    batch = NewBatch(tenant=tenant, name="chat.completions", source="api")
    try:
        return store_and_enqueue(
            state.sessions, state.broker_url, [spec], batch, None, keys
        ).batch_id
    except EnqueueFailed as exc:  # stored: the sweeper sends it, so keep waiting
        return exc.batch_id


def _result(state: ServeState, batch_id: uuid.UUID) -> dict[str, Any]:
    with session_scope(state.sessions) as session:
        return next(batch_reads_repo.iter_results(session, batch_id))


def _cancel(state: ServeState, batch_id: uuid.UUID) -> None:
    with session_scope(state.sessions) as session:
        batch_control_repo.cancel_batch(session, batch_id, datetime.now(UTC))


async def complete(
    state: ServeState, tenant: str, spec: JobSpec, request: Request
) -> dict[str, Any]:
    """Run `spec` as a job and wait for it; the chat.completion, or an ApiError."""
    batch_id = await anyio.to_thread.run_sync(_submit, state, tenant, spec)
    deadline = time.monotonic() + state.settings.chat_timeout_s
    delay = 0.02  # seconds between ledger reads, growing to 0.25
    while True:
        result = await anyio.to_thread.run_sync(_result, state, batch_id)
        if result["status"] in TERMINAL:
            break
        if result["status"] == "quota_exceeded":
            await anyio.to_thread.run_sync(_cancel, state, batch_id)
            message = (result.get("error") or {}).get("message") or "quota exceeded"
            raise ApiError(429, f"Quota exceeded: {message}", type="insufficient_quota",
                           code="insufficient_quota")  # fmt: skip
        if time.monotonic() > deadline or await request.is_disconnected():
            await anyio.to_thread.run_sync(_cancel, state, batch_id)
            raise ApiError(504, "The request timed out waiting for its job.", type="timeout")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    if result["status"] == "succeeded":
        return chat_completion(result, int(time.time()))
    error = result.get("error") or {}
    kind = error.get("type") or "internal"
    status, type_ = STATUS_FOR.get(kind, (502, "server_error"))
    raise ApiError(status, error.get("message") or f"the job {result['status']}", type=type_,
                   code=kind)  # fmt: skip
