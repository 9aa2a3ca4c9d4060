"""The read model of a batch: its status and spend, its results export, one job's timeline.

Owns: these reads (`llmq status`, `llmq results`, `llmq job`, the Python client), and the
value types they return. Read-only. Must not: write anything (submit is `batch_submit_repo`,
cancel and resume are `batch_control_repo`), open or commit transactions (every function takes
an open Session), decide routing or quota, or import provider code.

Cost: `Decimal` here; `core.money.money_str` gives the JSON/CLI form, a string with exactly 8
decimal places ("0.00123400"). Attempts with an unknown price add nothing to sums; they are
counted in `BatchStatus.unpriced_attempts`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import Session

from core import vectors
from core.ledger.models import Attempt, Batch, Job, JobVectors
from core.money import as_decimal, money_str
from schemas.job import AttemptOutcome, BatchState, JobState

PARKED = (JobState.QUOTA_EXCEEDED.value, JobState.DEFERRED.value)
TERMINAL = (JobState.SUCCEEDED.value, JobState.FAILED.value, JobState.CANCELLED.value)


@dataclass(frozen=True)
class ProviderStats:
    jobs: int  # jobs of the batch this provider finally served
    attempts: int  # attempt rows (calls and cache hits) that went to it
    cost_usd: Decimal


@dataclass(frozen=True)
class BatchStatus:
    """A batch's progress and spend, read in one go from the ledger."""

    batch_id: uuid.UUID
    name: str | None
    tenant: str
    state: str  # BatchState value, derived: cancelled / done (all terminal) / active
    total: int
    counts: dict[str, int]  # every JobState value, zeros included
    prompt_tokens: int  # billed attempts (cache hits excluded)
    completion_tokens: int
    cost_usd: Decimal  # every priced attempt of the batch, superseded ones included
    unpriced_attempts: int  # attempts with usage but no known price
    providers: dict[str, ProviderStats]
    cache_hits: int
    cache_saved_usd: Decimal
    max_cost_usd: Decimal | None
    nightly: bool
    created_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in TERMINAL)

    @property
    def parked(self) -> int:
        return sum(self.counts[s] for s in PARKED)

    @property
    def settled(self) -> bool:
        """True when no job can make progress on its own (none queued or running)."""
        moving = (JobState.QUEUED, JobState.RUNNING, JobState.BATCHED)
        return sum(self.counts[s] for s in moving) == 0

    @property
    def all_succeeded(self) -> bool:
        return self.counts[JobState.SUCCEEDED] == self.total

    def to_json(self) -> dict[str, Any]:
        """The documented `llmq status --json` shape (money as 8-decimal strings)."""
        return {
            "batch_id": str(self.batch_id),
            "name": self.name,
            "tenant": self.tenant,
            "state": self.state,
            "total": self.total,
            "counts": dict(self.counts),
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
            },
            "cost_usd": money_str(self.cost_usd),
            "unpriced_attempts": self.unpriced_attempts,
            "max_cost_usd": money_str(self.max_cost_usd),
            "providers": {
                p: {"jobs": s.jobs, "attempts": s.attempts, "cost_usd": money_str(s.cost_usd)}
                for p, s in sorted(self.providers.items())
            },
            "cache": {"hits": self.cache_hits, "saved_usd": money_str(self.cache_saved_usd)},
            "lanes": self.extra.get("lanes"),  # issue 18: per lane, and saved by batch lanes
            "created_at": self.created_at.isoformat(),
        }


def _lanes(session: Session, batch_id: uuid.UUID) -> dict[str, Any]:
    from core.ledger.lanes_reads_repo import lane_usage, lanes_json

    in_batch = Attempt.job_id.in_(select(Job.id).where(Job.batch_id == batch_id))
    return lanes_json(lane_usage(session, in_batch))


def find_batch_id(session: Session, text: str) -> uuid.UUID | None:
    """A full batch id, or a unique prefix of one (as printed in tables); None if no match."""
    try:
        return uuid.UUID(text) if session.get(Batch, uuid.UUID(text)) else None
    except ValueError:
        pass
    prefix = text.strip().lower().replace("-", "")
    if len(prefix) < 4 or any(c not in "0123456789abcdef" for c in prefix):
        return None
    as_hex = func.replace(cast(Batch.id, String), "-", "")
    found = session.scalars(select(Batch.id).where(as_hex.like(prefix + "%")).limit(2)).all()
    return found[0] if len(found) == 1 else None


def batch_status(session: Session, batch_id: uuid.UUID) -> BatchStatus | None:
    """Counts by state, billed tokens and cost, per-provider figures and cache savings."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        return None
    counts = {s.value: 0 for s in JobState}
    for state, n in session.execute(
        select(Job.state, func.count()).where(Job.batch_id == batch_id).group_by(Job.state)
    ):
        counts[state] = n
    served = dict(
        session.execute(
            select(Job.provider, func.count())
            .where(Job.batch_id == batch_id, Job.state == JobState.SUCCEEDED.value)
            .group_by(Job.provider)
        ).all()
    )
    spend = _attempt_totals(session, batch_id)
    providers = {
        p: ProviderStats(served.get(p, 0), n, cost) for p, (n, cost) in spend["by_provider"].items()
    }
    if batch.state == BatchState.CANCELLED:
        state = BatchState.CANCELLED.value
    elif sum(counts[s] for s in TERMINAL) == batch.total_jobs:
        state = BatchState.DONE.value
    else:
        state = BatchState.ACTIVE.value
    return BatchStatus(
        batch_id=batch.id,
        name=batch.name,
        tenant=batch.tenant,
        state=state,
        total=batch.total_jobs,
        counts=counts,
        prompt_tokens=spend["prompt_tokens"],
        completion_tokens=spend["completion_tokens"],
        cost_usd=spend["cost_usd"],
        unpriced_attempts=spend["unpriced"],
        providers=providers,
        cache_hits=spend["cache_hits"],
        cache_saved_usd=spend["cache_saved_usd"],
        max_cost_usd=batch.max_cost_usd,
        nightly=batch.nightly,
        extra={"lanes": _lanes(session, batch_id)},
        created_at=batch.created_at,
    )


def _attempt_totals(session: Session, batch_id: uuid.UUID) -> dict[str, Any]:
    """One GROUP BY provider over the batch's attempts; cache hits are counted apart."""
    hit = Attempt.outcome == AttemptOutcome.CACHE_HIT.value
    billed = Attempt.outcome != AttemptOutcome.CACHE_HIT.value
    zero = Decimal(0)
    stmt = (
        select(
            Attempt.provider,
            func.count(),
            func.coalesce(func.sum(Attempt.cost_usd), 0),
            func.coalesce(func.sum(case((billed, Attempt.prompt_tokens), else_=0)), 0),
            func.coalesce(func.sum(case((billed, Attempt.completion_tokens), else_=0)), 0),
            func.count().filter(hit),
            func.coalesce(func.sum(case((hit, Attempt.saved_usd), else_=None)), 0),
            func.count().filter(
                billed,
                Attempt.cost_usd.is_(None),
                (Attempt.prompt_tokens + Attempt.completion_tokens) > 0,
            ),
        )
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(Attempt.provider)
    )
    out: dict[str, Any] = {"by_provider": {}, "prompt_tokens": 0, "completion_tokens": 0}
    out |= {"cost_usd": zero, "cache_hits": 0, "cache_saved_usd": zero, "unpriced": 0}
    for provider, n, cost, ptok, ctok, hits, saved, unpriced in session.execute(stmt):
        cost, saved = as_decimal(cost), as_decimal(saved)
        out["by_provider"][provider] = (n, cost)
        out["prompt_tokens"] += int(ptok)
        out["completion_tokens"] += int(ctok)
        out["cost_usd"] += cost
        out["cache_hits"] += hits
        out["cache_saved_usd"] += saved
        out["unpriced"] += unpriced
    return out


def iter_results(
    session: Session, batch_id: uuid.UUID, chunk: int = 1000
) -> Iterator[dict[str, Any]]:
    """Yield one result dict per job in input order, streamed `chunk` rows at a time
    (a server-side cursor on Postgres). The session must stay open while iterating."""
    cost = (
        select(Attempt.job_id, func.sum(Attempt.cost_usd).label("cost"))
        .join(Job, Job.id == Attempt.job_id)
        .where(Job.batch_id == batch_id)
        .group_by(Attempt.job_id)
        .subquery()
    )
    stmt = (
        select(
            Job.custom_id,
            Job.id,
            Job.state,
            Job.result,
            Job.error,
            Job.provider,
            Job.served_model,
            Job.model,
            Job.prompt_tokens,
            Job.completion_tokens,
            Job.attempts,
            cost.c.cost,
            JobVectors.dims,
            JobVectors.data,
            Job.spec["embedding"]["encoding_format"].as_string(),
        )
        .outerjoin(cost, cost.c.job_id == Job.id)
        .outerjoin(JobVectors, JobVectors.job_id == Job.id)
        .where(Job.batch_id == batch_id)
        .order_by(Job.line_no)
        .execution_options(yield_per=chunk)
    )
    for row in session.execute(stmt):
        yield _result_line(row)


USAGE_CLASSES = ("cached_tokens", "cache_write_tokens", "reasoning_tokens")


def _result_line(row: Any) -> dict[str, Any]:
    (cid, jid, state, result, error, provider, served, model, ptok, ctok, attempts, cost) = row[:12]
    response: dict[str, Any] | None = None
    if state == JobState.SUCCEEDED and result is not None and result.get("embedding"):
        response = _embedding_response(result, served or model, provider, *row[12:])
    elif state == JobState.SUCCEEDED and result is not None:
        response = {
            "text": result.get("text"),
            "model": served or result.get("model_id") or result.get("model") or model,
            "provider": provider or result.get("provider"),
            "finish_reason": result.get("finish_reason"),
            # issue 15: the calls the model asked for, arguments as JSON text (OpenAI's form),
            # and the JSON value when JSON was asked for (validated; None otherwise)
            "tool_calls": [
                {"id": c["id"], "name": c["name"], "arguments": c["arguments"]}
                for c in result.get("tool_calls") or ()
            ],
            "parsed": result.get("parsed"),
        }
        if result.get("refusal") is not None:
            response["refusal"] = result["refusal"]
    usage = None
    if response is not None or ptok or ctok:
        # issue 19: the classes inside the totals, from the result's usage when it is the
        # job's own call (a cache hit reuses another call's result but books 0 tokens)
        stored = (result or {}).get("usage") or {}
        own = (stored.get("prompt_tokens"), stored.get("completion_tokens")) == (ptok, ctok)
        classes = stored if own else {}
        usage = {
            "prompt_tokens": ptok,
            "completion_tokens": ctok,
            "total_tokens": ptok + ctok,
            **{k: int(classes.get(k) or 0) for k in USAGE_CLASSES},
        }
    return {
        "custom_id": cid,
        "job_id": str(jid),
        "status": state,
        "response": response,
        "usage": usage,
        "cost_usd": money_str(cost if cost is not None else Decimal(0)),
        "attempts": attempts,
        "error": _error(error),
    }


def _embedding_response(
    result: dict[str, Any], model: str, provider: str | None, dims: Any, data: Any, fmt: Any
) -> dict[str, Any]:
    """Issue 17: one vector per input, in input order, from the job's float32 bytes."""
    response = {
        "embeddings": vectors.unpack(bytes(data), dims) if data is not None else [],
        "dimensions": result["embedding"]["dimensions"],
        "model": model,
        "provider": provider or result.get("provider"),
    }
    if fmt is not None:
        response["encoding_format"] = fmt  # how --format openai writes them
    if (result.get("usage") or {}).get("estimated"):
        response["usage_estimated"] = True  # the provider reported no usage
    return response


def _error(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The job's error; with `raw` (the unusable last reply: invalid_output, refused) when kept."""
    if not error:
        return None
    out = {"type": error.get("type"), "message": error.get("message")}
    if error.get("raw") is not None:
        out["raw"] = error["raw"]
    return out


_TIMELINE_JOB_FIELDS = (
    "custom_id", "tenant", "model", "state", "attempts", "created_at", "enqueued_at",
    "not_before", "finished_at", "provider", "served_model", "error",
)  # fmt: skip


@dataclass(frozen=True)
class JobTimeline:
    job: dict[str, Any]  # id, batch_id, custom_id, model, state, attempts, error, ...
    attempts: list[dict[str, Any]]  # in attempt order; money as Decimal


def job_timeline(session: Session, job_id: uuid.UUID) -> JobTimeline | None:
    """One job and every attempt row it has, in order."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    info = {c: getattr(job, c) for c in _TIMELINE_JOB_FIELDS}
    info |= {"id": str(job.id), "batch_id": str(job.batch_id)}
    rows = session.scalars(
        select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.attempt_no)
    ).all()
    cols = [c.key for c in Attempt.__table__.columns if c.key != "job_id"]
    return JobTimeline(info, [{c: getattr(a, c) for c in cols} for a in rows])
