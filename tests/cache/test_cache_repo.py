"""`core.ledger.cache_repo` on a real ledger (Postgres, and SQLite for the embedded mode):
which rows are entries, and what recording a hit writes. Rows that stand for earlier runs are
written directly as test data; claims go through the real `jobs_repo.claim_job`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import cache_repo, jobs_repo
from core.ledger.db import make_engine, make_sessionmaker, session_scope
from core.ledger.models import Attempt, Batch, BudgetWindow, Job

KEY = "k" * 64
TTL_S = 3600.0
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
def ledger(request: pytest.FixtureRequest, tmp_path) -> Iterator[sessionmaker[Session]]:  # type: ignore[no-untyped-def]
    if request.param == "postgres":
        url = request.getfixturevalue("clean_db")
    else:
        from core.ledger.migrate import upgrade

        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        upgrade(url)
    engine = make_engine(url, pool_size=2)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_job(
    s: Session,
    *,
    key: str | None = KEY,
    state: str = "succeeded",
    finished_at: datetime | None = NOW - timedelta(minutes=5),
    outcome: str | None = "succeeded",
    text: str = "the answer",
    cost: Decimal | None = Decimal("0.00012000"),
) -> uuid.UUID:
    """A job of its own batch; with `outcome`, one attempt row (number 1) that ended so."""
    batch = Batch(tenant="t", state="active", total_jobs=1, created_at=NOW - timedelta(hours=1))
    s.add(batch)
    s.flush()
    done = state == "succeeded"
    job = Job(
        batch_id=batch.id,
        line_no=1,
        custom_id="c",
        tenant="t",
        model="m",
        spec={"messages": [{"role": "user", "content": "q"}], "cache": True},
        state=state,
        attempts=1 if outcome else 0,
        created_at=NOW - timedelta(hours=1),
        finished_at=finished_at,
        cache_key=key,
        result={"text": text, "provider": "openai", "model": "m", "model_id": "gpt-x"}
        if done
        else None,
        provider="openai" if done else None,
        served_model="gpt-x" if done else None,
        prompt_tokens=30 if done else 0,
        completion_tokens=12 if done else 0,
        cost_usd=cost or Decimal(0),
    )
    s.add(job)
    s.flush()
    if outcome:
        s.add(
            Attempt(
                job_id=job.id,
                attempt_no=1,
                provider="openai",
                model="gpt-x",
                deployment="openai/gpt-x",
                outcome=outcome,
                started_at=NOW - timedelta(minutes=6),
                prompt_tokens=30,
                completion_tokens=12,
                cost_usd=cost,
                tenant=job.tenant,
            )
        )
    return job.id


def claimed(ledger: sessionmaker[Session], **fields: Any) -> jobs_repo.ClaimedJob:
    """A queued job with the cache key, claimed by the real claim."""
    with session_scope(ledger) as s:
        job_id = add_job(s, state="queued", finished_at=None, outcome=None, **fields)
    with session_scope(ledger) as s:
        claim = jobs_repo.claim_job(s, job_id, NOW, lease_s=300)
    assert claim is not None
    return claim


def find(ledger: sessionmaker[Session], job_id: uuid.UUID, ttl_s: float = TTL_S) -> Any:
    with session_scope(ledger) as s:
        return cache_repo.lookup(s, KEY, job_id, NOW, ttl_s)


# ---- lookup ---------------------------------------------------------------------------------


def test_claim_carries_the_cache_key(ledger) -> None:  # type: ignore[no-untyped-def]
    assert claimed(ledger).cache_key == KEY
    assert claimed(ledger, key=None).cache_key is None


def test_lookup_finds_the_newest_fresh_success_with_its_call(ledger) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        add_job(s, text="older", finished_at=NOW - timedelta(minutes=30))
        newest = add_job(s, text="newer", finished_at=NOW - timedelta(minutes=1))
        add_job(s, key="other" * 12 + "oooo", finished_at=NOW)
    entry = find(ledger, uuid.uuid4())
    assert entry is not None and entry.job_id == newest
    assert entry.result["text"] == "newer"
    assert (entry.provider, entry.served_model, entry.deployment) == (
        "openai",
        "gpt-x",
        "openai/gpt-x",
    )
    assert (entry.prompt_tokens, entry.completion_tokens) == (30, 12)
    assert entry.cost_usd == Decimal("0.00012")


@pytest.mark.parametrize(
    "row",
    [
        {"state": "failed", "outcome": "failed"},  # a failed result is never cached
        {"finished_at": NOW - timedelta(seconds=TTL_S + 1)},  # expired
        {"outcome": "cache_hit"},  # answered from the cache itself: not an entry
        {"outcome": "superseded"},  # its answer is not the job's
        {"key": None},  # not cacheable
    ],
    ids=["failed", "expired", "served-from-cache", "superseded", "no-key"],
)
def test_lookup_misses(ledger, row: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        add_job(s, **row)
    assert find(ledger, uuid.uuid4()) is None


def test_entry_is_fresh_until_ttl_after_its_call(ledger) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        add_job(s, finished_at=NOW - timedelta(seconds=100))
    assert find(ledger, uuid.uuid4(), ttl_s=101) is not None
    assert find(ledger, uuid.uuid4(), ttl_s=99) is None


def test_a_job_is_never_its_own_entry(ledger) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        only = add_job(s)
    assert find(ledger, only) is None


# ---- recording a hit ------------------------------------------------------------------------


def test_record_hit_finishes_the_job_and_writes_one_cache_hit_attempt(ledger) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        source = add_job(s)
    claim = claimed(ledger)
    entry = find(ledger, claim.id)
    with session_scope(ledger) as s:
        assert cache_repo.record_hit(s, claim, entry, NOW, latency_ms=3)
    with Session(ledger.kw["bind"]) as s:
        job = s.get_one(Job, claim.id)
        [attempt] = s.scalars(select(Attempt).where(Attempt.job_id == claim.id)).all()
        windows = s.scalars(select(BudgetWindow)).all()
        src = s.get_one(Job, source)
    assert job.state == "succeeded" and job.result == src.result
    assert (job.provider, job.served_model) == ("openai", "gpt-x")
    assert (job.prompt_tokens, job.completion_tokens, job.cost_usd) == (0, 0, 0)
    assert job.finished_at is not None and job.lease_until is None
    assert attempt.attempt_no == claim.attempt_no == job.attempts
    assert (attempt.outcome, attempt.deployment, attempt.latency_ms) == (
        "cache_hit",
        "openai/gpt-x",
        3,
    )
    assert (attempt.prompt_tokens, attempt.completion_tokens, attempt.cost_usd) == (0, 0, 0)
    assert (attempt.reserved_tokens, attempt.reserved_usd) == (0, 0)
    assert attempt.saved_usd == Decimal("0.00012") and attempt.saved_tokens == 42
    assert attempt.cached_from == source
    assert windows == []  # no quota window touched: nothing reserved, nothing spent


def test_a_hit_is_not_an_entry_for_the_next_job(ledger) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        source = add_job(s, finished_at=NOW - timedelta(minutes=50))
    claim = claimed(ledger)
    with session_scope(ledger) as s:
        cache_repo.record_hit(s, claim, cache_repo.lookup(s, KEY, claim.id, NOW, TTL_S), NOW, 1)
    # The hit finished at NOW, but the entry still dates from its call: it expires on time.
    entry = find(ledger, uuid.uuid4())
    assert entry is not None and entry.job_id == source
    assert find(ledger, uuid.uuid4(), ttl_s=50 * 60 - 1) is None


def test_record_hit_by_a_superseded_claim_writes_nothing(ledger) -> None:  # type: ignore[no-untyped-def]
    with session_scope(ledger) as s:
        add_job(s)
    claim = claimed(ledger)
    entry = find(ledger, claim.id)
    with session_scope(ledger) as s:  # another worker's claim took the job over
        s.execute(update(Job).where(Job.id == claim.id).values(attempts=Job.attempts + 1))
    with session_scope(ledger) as s:
        assert cache_repo.record_hit(s, claim, entry, NOW, latency_ms=1) is False
    with Session(ledger.kw["bind"]) as s:
        assert s.get_one(Job, claim.id).state == "running"
        assert s.scalars(select(Attempt).where(Attempt.job_id == claim.id)).all() == []
