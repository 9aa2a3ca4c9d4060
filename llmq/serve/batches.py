"""The batch work of `llmq serve`: create (validate, store, enqueue), read with the status
OpenAI shows, finalize into output and error files, list, cancel.

Owns: the mapping from llmq's ledger to OpenAI's batch lifecycle:

    create:  a bad line -> `failed` with `errors.data` (nothing stored, nothing runs);
             else one transaction (file marked used, ledger batch + jobs, batch object) ->
             `in_progress`, then the job ids are enqueued (a failed enqueue is left to the
             sweeper, as for `llmq submit`).
    read:    `in_progress` until every job is terminal -> finalize -> `completed`;
             `cancelling` (jobs cancelled, running ones finish) -> finalize -> `cancelled`;
             past `expires_at` (24 h): unfinished jobs cancelled, shown `finalizing`
             -> finalize -> `expired` (those lines carry `batch_expired` in the error file).
    finalize: on the read that sees the batch done, under a row lock (SKIP LOCKED, so
             replicas never finalize twice and others show `finalizing` meanwhile): the
             output and error files are written from the ledger, counts and usage frozen.

Must not: write SQL (the ledger's repositories do), import provider code, or hold state.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from core import cache_key, jsonl
from core.durations import parse_duration
from core.ledger import api_batches_repo as repo
from core.ledger import batch_control_repo, batch_reads_repo, batch_submit_repo, files_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from core.ledger.models import ApiBatch
from llmq.serve import batch_input, objects
from llmq.serve.errors import ApiError, not_found
from llmq.serve.state import ServeState
from producer.openai_format import openai_line
from producer.submit import EnqueueFailed, publish_or_mark

log = logging.getLogger(__name__)

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")  # issue 17: embedding batches too
EMBEDDINGS = ENDPOINTS[1]
WINDOWS = {"24h": timedelta(hours=24)}


class CreateBatch(BaseModel):
    """The body of POST /v1/batches (other fields are ignored, as OpenAI ignores unknown ones)."""

    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = Field(default=None, max_length=16)


# --- create -------------------------------------------------------------------------------


def create(state: ServeState, tenant: str, req: CreateBatch) -> dict[str, Any]:
    """Validate the input file's every line; store and enqueue, or answer a `failed` batch."""
    _check_request(req)
    try:
        budget = batch_input.max_cost(req.metadata)
    except ValueError as exc:
        raise ApiError(
            400, f"metadata.{batch_input.MAX_COST_KEY}: {exc}", param="metadata"
        ) from exc
    now = datetime.now(UTC)
    with session_scope(state.sessions) as session:
        _check_input_file(session, tenant, req.input_file_id)
        try:
            specs = jsonl.parse_lines(
                batch_input.numbered_lines(files_repo.iter_content(session, req.input_file_id)),
                state.config,
                capabilities=state.capabilities,
            )
            _check_endpoint(specs, req.endpoint, session, req.input_file_id)
        except jsonl.InputError as exc:
            return _store_failed(session, tenant, req, exc, now)
    keys = cache_key.keys_for(specs, state.config, tenant=tenant)
    api_id = repo.new_batch_id()
    # issue 18: the completion window is the jobs' deadline, so they may use batch lanes
    due = now + parse_duration(req.completion_window)
    new = NewBatch(
        tenant=tenant, name=api_id, max_cost_usd=budget, source=req.input_file_id, deadline=due
    )
    with session_scope(state.sessions) as session:
        if not files_repo.claim_for_batch(session, tenant, req.input_file_id, api_id):
            raise ApiError(400, _used_message(req.input_file_id), param="input_file_id")
        batch_id, job_ids = batch_submit_repo.insert_batch_with_jobs(session, new, specs, now, keys)
        row = repo.insert(session, _row(api_id, tenant, req, now, "in_progress", batch_id))
    try:
        publish_or_mark(state.sessions, state.broker_url, batch_id, job_ids)
    except EnqueueFailed as exc:
        log.warning("batch %s stored; %d of %d ids enqueued, the sweeper sends the rest",
                    api_id, exc.sent, exc.jobs)  # fmt: skip
    return objects.batch_object(row, _zero_figures(len(specs)))


def _check_request(req: CreateBatch) -> None:
    if req.endpoint not in ENDPOINTS:
        raise ApiError(
            400,
            f"Invalid value for 'endpoint': {req.endpoint!r}. Supported: {', '.join(ENDPOINTS)}.",
            param="endpoint",
        )
    if req.completion_window not in WINDOWS:
        raise ApiError(
            400,
            f"Invalid value for 'completion_window': {req.completion_window!r}. Supported: 24h.",
            param="completion_window",
        )


def _check_endpoint(specs: list[Any], endpoint: str, session: Session, file_id: str) -> None:
    """Every line's kind matches the batch's endpoint (as OpenAI requires); the file is read
    again for line numbers only when one does not."""
    embedding = endpoint == EMBEDDINGS
    bad = {i for i, spec in enumerate(specs) if spec.is_embedding != embedding}
    if not bad:
        return
    lines = batch_input.numbered_lines(files_repo.iter_content(session, file_id))
    numbers = [n for n, raw in lines if raw is not None and raw.strip()]
    errors = [f'line {numbers[i]}: url must be "{endpoint}" in this batch' for i in sorted(bad)]
    raise jsonl.InputError(errors[:20], file_id, len(bad))


def _used_message(file_id: str) -> str:
    return f"The input file {file_id} has already been used by another batch."


def _check_input_file(session: Session, tenant: str, file_id: str) -> None:
    f = files_repo.get_file(session, tenant, file_id)
    if f is None:
        raise not_found("File", file_id)
    if f.purpose != "batch":
        raise ApiError(
            400,
            f"The input file {file_id} has purpose {f.purpose!r}; a batch needs purpose 'batch'.",
            param="input_file_id",
        )
    if f.used_by is not None:
        raise ApiError(400, _used_message(file_id), param="input_file_id")


def _row(
    api_id: str, tenant: str, req: CreateBatch, now: datetime, status: str, batch_id: Any = None
) -> ApiBatch:
    return ApiBatch(
        id=api_id,
        tenant=tenant,
        batch_id=batch_id,
        input_file_id=req.input_file_id,
        endpoint=req.endpoint,
        completion_window=req.completion_window,
        status=status,
        meta=req.metadata,
        created_at=now,
        expires_at=now + WINDOWS[req.completion_window],
        in_progress_at=now if status == "in_progress" else None,
    )


def _store_failed(
    session: Session, tenant: str, req: CreateBatch, exc: jsonl.InputError, now: datetime
) -> dict[str, Any]:
    row = _row(repo.new_batch_id(), tenant, req, now, "failed")
    row.errors = batch_input.validation_errors(exc)
    row.failed_at = now
    row.final = _zero_figures(0)
    repo.insert(session, row)
    return objects.batch_object(row, None)


def _zero_figures(total: int) -> dict[str, Any]:
    return {
        "request_counts": {"total": total, "completed": 0, "failed": 0},
        "usage": objects.usage(0, 0),
    }


# --- read, finalize -----------------------------------------------------------------------


def retrieve(state: ServeState, tenant: str, api_id: str) -> dict[str, Any]:
    """The batch object with its current status; finalizes it when its jobs are done."""
    with session_scope(state.sessions) as session:
        row = repo.get(session, tenant, api_id)
        if row is None:
            raise not_found("batch", api_id)
        target, obj = _refresh(state, session, row, datetime.now(UTC))
    if target is None:
        return obj
    return _finalize(state, api_id) or {**obj, "status": "finalizing"}


def _refresh(
    state: ServeState, session: Session, row: ApiBatch, now: datetime
) -> tuple[str | None, dict[str, Any]]:
    """(final status due now or None, the object as of now). Starts an expiry when due.
    The job counts may be `poll_cache_s` old (see `live`); the row itself never is."""
    if row.status in repo.FINAL or row.batch_id is None:
        return None, objects.batch_object(row, None)
    batch_id = row.batch_id
    live = state.live.get(row.id, lambda: repo.live_counts(session, batch_id))
    if row.status == "in_progress" and now >= row.expires_at and live.terminal < live.total:
        batch_control_repo.cancel_batch(session, batch_id, now)
        row.status = "expiring"
        live = repo.live_counts(session, batch_id)
    due = _due(row.status, live.terminal, live.total)
    return due, objects.batch_object(row, objects.live_figures(live))


def _due(status: str, terminal: int, total: int) -> str | None:
    """The final status a batch in `status` takes once all its `total` jobs are terminal."""
    if terminal < total:
        return None
    return {"in_progress": "completed", "cancelling": "cancelled", "expiring": "expired"}.get(
        status
    )


def _finalize(state: ServeState, api_id: str) -> dict[str, Any] | None:
    """Write the result files and store the final status, decided under the lock from fresh
    counts; None if another replica is finalizing, or it is not due after all."""
    now = datetime.now(UTC)
    with session_scope(state.sessions) as session:
        row = repo.lock(session, api_id)
        if row is None:
            return None
        if row.status in repo.FINAL:
            return objects.batch_object(row, None)
        assert row.batch_id is not None
        st = batch_reads_repo.batch_status(session, row.batch_id)
        assert st is not None
        target = _due(row.status, st.done, st.total) or ""
        if not target:  # the memoised counts were behind, or the row moved on meanwhile
            return None
        code = "batch_expired" if target == "expired" else "batch_cancelled"
        out_id, err_id = _write_files(session, row, int(now.timestamp()), code, now)
        figures = objects.final_figures(st)
        repo.finalize(
            session, row, target, now, final=figures, output_file_id=out_id, error_file_id=err_id
        )
        return objects.batch_object(row, figures)


def _write_files(
    session: Session, row: ApiBatch, created: int, code: str, now: datetime
) -> tuple[str | None, str | None]:
    """The output file (succeeded lines) and the error file (the rest), written in one pass
    over the results; an id is None when its file would be empty."""
    assert row.batch_id is not None
    files = {
        ok: files_repo.FileWriter(
            session, row.tenant, "batch_output", f"{row.id}_{suffix}.jsonl", now
        )
        for ok, suffix in ((True, "output"), (False, "error"))
    }
    for result in batch_reads_repo.iter_results(session, row.batch_id):
        line, ok = openai_line(result, created, code)
        files[ok].write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
    return files[True].close(), files[False].close()


# --- list, cancel -------------------------------------------------------------------------


def list_batches(state: ServeState, tenant: str, limit: int, after: str | None) -> dict[str, Any]:
    """The tenant's batches, newest first (statuses as `retrieve` shows them)."""
    with session_scope(state.sessions) as session:
        rows, more = repo.list_batches(session, tenant, limit, after)
        ids = [r.id for r in rows]
    return objects.list_object([retrieve(state, tenant, i) for i in ids], more)


def cancel(state: ServeState, tenant: str, api_id: str) -> dict[str, Any]:
    """Queued and parked jobs are cancelled now; running ones finish; then `cancelled`."""
    now = datetime.now(UTC)
    with session_scope(state.sessions) as session:
        row = repo.get(session, tenant, api_id)
        if row is None:
            raise not_found("batch", api_id)
        if row.status in ("failed", "completed", "expired", "expiring"):
            raise ApiError(
                400,
                f"Cannot cancel a batch with status {objects.SHOWN.get(row.status, row.status)!r}.",
            )
        if row.status == "in_progress" and row.batch_id is not None:
            repo.mark_cancelling(session, api_id, now)
            batch_control_repo.cancel_batch(session, row.batch_id, now)
    state.live.forget(api_id)  # the next read sees the cancelled jobs
    return retrieve(state, tenant, api_id)
