"""File and Batch objects spelled as OpenAI's API spells them (the `openai` SDK's `FileObject`
and `Batch` types parse them).

Owns: rendering ledger rows into those dicts, the list envelope, and the status the API shows
for a batch whose final status is not stored yet. Must not: do I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.ledger.api_batches_repo import LiveCounts
from core.ledger.batch_reads_repo import BatchStatus
from core.ledger.files_repo import FileRow
from core.ledger.models import ApiBatch

# stored status -> what the API shows while the final status is not yet stored
SHOWN = {"in_progress": "in_progress", "cancelling": "cancelling", "expiring": "finalizing"}
_TIMESTAMPS = (
    "in_progress_at", "finalizing_at", "completed_at", "failed_at", "cancelling_at",
    "cancelled_at", "expired_at",
)  # fmt: skip


def unix(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp())


def file_object(f: FileRow) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": unix(f.created_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


def list_object(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def live_figures(live: LiveCounts) -> dict[str, Any]:
    """request_counts and usage of a batch still running, from its jobs."""
    failed = live.counts.get("failed", 0) + live.counts.get("cancelled", 0)
    return {
        "request_counts": {
            "total": live.total,
            "completed": live.counts.get("succeeded", 0),
            "failed": failed,
        },
        "usage": usage(live.prompt_tokens, live.completion_tokens),
    }


def final_figures(st: BatchStatus) -> dict[str, Any]:
    """Frozen at finalize: every request that did not succeed counts as failed."""
    done = st.counts["succeeded"]
    return {
        "request_counts": {"total": st.total, "completed": done, "failed": st.total - done},
        "usage": usage(st.prompt_tokens, st.completion_tokens),
    }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + completion_tokens,
    }


def batch_object(
    row: ApiBatch, figures: dict[str, Any] | None, shown: str | None = None
) -> dict[str, Any]:
    """The Batch object of `row`; `figures` are live or frozen counts and usage (None for a
    batch that failed validation); `shown` overrides the status (e.g. `finalizing`)."""
    figures = figures or row.final or {}
    errors = None
    if row.errors:
        errors = {"object": "list", "data": row.errors}
    obj: dict[str, Any] = {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "errors": errors,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": shown or SHOWN.get(row.status, row.status),
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": unix(row.created_at),
        "expires_at": unix(row.expires_at),
        "request_counts": figures.get("request_counts", {"total": 0, "completed": 0, "failed": 0}),
        "usage": figures.get("usage", usage(0, 0)),
        "metadata": row.meta,
    }
    obj |= {name: unix(getattr(row, name)) for name in _TIMESTAMPS}
    return obj
