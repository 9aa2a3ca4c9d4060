"""Batch lanes end to end on the simulator (issue 18), the pipeline and the ledger in this
process: admission to a lane, flush, poll, results settled once, and every failure path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger import lanes_repo
from core.ledger.db import session_scope
from core.ledger.models import ProviderBatch
from lanes.conftest import MODELS, Lanes, models_for
from workers.lanes.admit import custom_id_of
from workers.lanes.flush import _request, flush_once
from workers.lanes.poll import poll_once
from workers.pipeline import run_job
from workers.providers.batch import BatchClient, BatchItem


def _assert_books_balance(lanes: Lanes, ids, attempts_per_job: int | None = 1) -> None:  # type: ignore[no-untyped-def]
    """Every job succeeded once; windows hold nothing reserved; ledger == simulator billing."""
    assert set(lanes.states(ids).values()) == {"succeeded"}
    rows = lanes.attempts(ids)
    won = [a for a in rows if a.outcome == "succeeded"]
    assert sorted(a.job_id for a in won) == sorted(ids)  # exactly once each
    if attempts_per_job is not None:
        assert len(rows) == attempts_per_job * len(ids)
    for w in lanes.windows():
        assert w.reserved_usd == 0 and w.reserved_tokens == 0, w.scope
    day = [w for w in lanes.windows() if w.period == "day"]
    ledger = lanes.ledger_cost("batch") + lanes.ledger_cost(None)
    assert sum(w.spent_usd for w in day) == ledger
    assert lanes.ledger_cost("batch") == lanes.sim_cost("batch")
    assert lanes.ledger_cost(None) == lanes.sim_cost("sync")


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_jobs_with_a_deadline_go_through_the_batch_lane_at_half_price(lanes: Lanes, provider):  # type: ignore[no-untyped-def]
    lanes.configure(models_for(provider))
    ids = lanes.submit(6)
    assert lanes.run(ids) == ["batched"] * 6
    assert set(lanes.states(ids).values()) == {"batched"}
    assert lanes.sim.billing() == []  # nothing sent yet: items wait for the flusher
    flushed, polled = lanes.step()
    assert flushed.created == 1 and flushed.items == 6 and polled.ended == 1
    _assert_books_balance(lanes, ids)
    rows = lanes.attempts(ids)
    assert {a.lane for a in rows} == {"batch"}
    assert all(a.provider_batch_id for a in rows)
    for a in rows:  # cost at the batch price, half the sync price here
        assert a.cost_usd * 2 == a.sync_cost_usd and a.cost_usd > 0
    assert lanes.sim.billing("sync") == []


def test_without_a_deadline_or_near_it_the_sync_lane(lanes: Lanes):  # type: ignore[no-untyped-def]
    lanes.configure(models_for("openai"))
    no_deadline = lanes.submit(2, deadline_s=None)
    soon = lanes.submit(2, deadline_s=100)  # window 60 + margin 60 = 120 s needed
    assert lanes.run([*no_deadline, *soon]) == ["succeeded"] * 4
    assert {a.lane for a in lanes.attempts([*no_deadline, *soon])} == {None}
    assert lanes.sim.billing("batch") == []


def test_lanes_disabled_take_the_sync_lane(lanes: Lanes):  # type: ignore[no-untyped-def]
    lanes.configure(models_for("anthropic"), lanes={"enabled": False})
    ids = lanes.submit(3)
    assert lanes.run(ids) == ["succeeded"] * 3
    _assert_books_balance(lanes, ids)


def test_item_errors_are_retried_within_the_attempt_budget(lanes: Lanes):  # type: ignore[no-untyped-def]
    lanes.configure(models_for("openai"))
    lanes.sim.configure("openai", batch_item_error_rate=0.4)
    ids = lanes.submit(20)
    lanes.run(ids)
    lanes.step()
    requeued = lanes.runnable(ids)
    assert 0 < len(requeued) < 20  # the errored items went back to routing
    lanes.sim.configure("openai", batch_item_error_rate=0.0)
    lanes.drive(ids)
    _assert_books_balance(lanes, ids, attempts_per_job=None)
    failed = [a for a in lanes.attempts(ids) if a.outcome == "failed"]
    assert len(failed) == len(requeued) and all(a.cost_usd == 0 for a in failed)
    assert all(a.lane == "batch" for a in lanes.attempts(ids))  # a later batch took them


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_an_expired_batch_sends_its_unfinished_items_back(lanes: Lanes, provider):  # type: ignore[no-untyped-def]
    lanes.configure(models_for(provider))
    lanes.sim.configure(provider, batch_outcome="expired", batch_done_fraction=0.5)
    ids = lanes.submit(10)
    lanes.run(ids)
    _, polled = lanes.step()
    assert polled.applied == {"succeeded": 5, "requeued": 5}
    lanes.sim.configure(provider, batch_outcome="completed")
    lanes.drive(ids)
    _assert_books_balance(lanes, ids, attempts_per_job=None)
    assert len(lanes.attempts(ids)) == 15  # 5 ran once, 5 twice (the first one unbilled)


def test_a_failed_batch_sends_every_item_back(lanes: Lanes):  # type: ignore[no-untyped-def]
    lanes.configure(models_for("google"))
    lanes.sim.configure("google", batch_outcome="failed")
    ids = lanes.submit(4)
    lanes.run(ids)
    _, polled = lanes.step()
    assert polled.applied == {"requeued": 4}
    lanes.sim.configure("google", batch_outcome="completed")
    lanes.drive(ids)
    _assert_books_balance(lanes, ids, attempts_per_job=2)


def test_near_the_deadline_the_batch_is_cancelled_and_items_go_sync(lanes: Lanes):  # type: ignore[no-untyped-def]
    rt = lanes.configure(models_for("anthropic"))
    lanes.sim.configure("anthropic", batch_delay_s=3600)  # the provider takes its time
    ids = lanes.submit(3, deadline_s=200)
    lanes.run(ids)
    flush_once(rt, datetime.now(UTC), force=True)
    later = datetime.now(UTC) + timedelta(seconds=150)  # 50 s left: inside the 60 s margin
    assert poll_once(rt, later).cancelled == 1
    polled = poll_once(rt, later)
    assert polled.applied == {"requeued": 3}
    assert [run_job(i, rt, later).status for i in ids] == ["succeeded"] * 3
    rows = lanes.attempts(ids)
    assert sorted(a.lane or "sync" for a in rows) == ["batch"] * 3 + ["sync"] * 3
    _assert_books_balance(lanes, ids, attempts_per_job=2)


def test_a_flusher_killed_before_the_create_creates_it_once(lanes: Lanes):  # type: ignore[no-untyped-def]
    rt = lanes.configure(models_for("openai"))
    ids = lanes.submit(5)
    lanes.run(ids)
    now = datetime.now(UTC)
    with session_scope(rt.sessions) as s:  # the intent, then "SIGKILL" before the create
        assert lanes_repo.record_intent(s, "openai/gpt-4o-mini", "openai", 100, now) is not None
    flushed = flush_once(rt, now)
    assert (flushed.adopted, flushed.created) == (0, 1)
    lanes.drive(ids)
    _assert_books_balance(lanes, ids)


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_a_batch_created_but_not_recorded_is_adopted_not_created_twice(lanes: Lanes, provider):  # type: ignore[no-untyped-def]
    rt = lanes.configure(models_for(provider))
    ids = lanes.submit(5)
    lanes.run(ids)
    now = datetime.now(UTC)
    dep = next(iter(rt.adapters))
    with session_scope(rt.sessions) as s:
        batch_id = lanes_repo.record_intent(s, dep, provider, 100, now)
        items = lanes_repo.items_of(s, batch_id)
    # the create reached the provider; the flusher died before recording its id
    BatchClient(rt.adapters[dep]).create(
        [BatchItem(i.custom_id, _request(rt, i)) for i in items], str(batch_id)
    )
    flushed = flush_once(rt, now)
    assert (flushed.adopted, flushed.created) == (1, 0)
    lanes.drive(ids)
    _assert_books_balance(lanes, ids)
    with Session(lanes.engine) as s:
        assert len(s.scalars(select(ProviderBatch)).all()) == 1
    assert sum(r["requests"] for r in lanes.sim.billing("batch")) == 5  # billed once each


def test_a_result_applied_twice_counts_once(lanes: Lanes):  # type: ignore[no-untyped-def]
    rt = lanes.configure(models_for("openai"))
    ids = lanes.submit(3)
    lanes.run(ids)
    flush_once(rt, datetime.now(UTC), force=True)
    with Session(lanes.engine) as s:
        row = s.scalars(select(ProviderBatch)).one()
        row_id, external = row.id, row.external_id
    poll_once(rt, datetime.now(UTC))
    with session_scope(rt.sessions) as s:  # a second poller that read the batch as still open
        lanes_repo.set_state(s, row_id, "open", None, datetime.now(UTC))
        s.execute(
            lanes_repo._items.update()
            .values(state="sent")
            .where(lanes_repo._items.c.provider_batch == row_id)
        )
    again = poll_once(rt, datetime.now(UTC))
    assert again.applied == {"stale": 3}
    _assert_books_balance(lanes, ids)
    assert external and custom_id_of(ids[0], 1) == f"{ids[0].hex}-1"


def test_quota_holds_the_batch_price_while_the_batch_is_open(lanes: Lanes):  # type: ignore[no-untyped-def]
    lanes.configure(models_for("openai"))
    lanes.sim.configure("openai", batch_delay_s=3600)
    ids = lanes.submit(4)
    lanes.run(ids)
    lanes.step()
    rows = lanes.attempts(ids)
    reserved = sum(a.reserved_usd for a in rows)
    day = next(w for w in lanes.windows() if w.period == "day")
    assert day.reserved_usd == reserved > 0 and day.spent_usd == 0
    # the worst case priced at the batch price: half of the sync price's
    assert all(a.reserved_usd < Decimal("0.0001") for a in rows)
    assert set(lanes.states(ids).values()) == {"batched"}


def test_the_sweeper_leaves_jobs_waiting_in_a_provider_batch_alone(lanes: Lanes):  # type: ignore[no-untyped-def]
    from schemas.settings import Settings
    from workers.sweeper import sweep_once

    rt = lanes.configure(models_for("openai"))
    lanes.sim.configure("openai", batch_delay_s=3600)
    ids = lanes.submit(3)
    lanes.run(ids)
    flush_once(rt, datetime.now(UTC), force=True)
    hours_later = datetime.now(UTC) + timedelta(hours=3)  # every lease long expired
    settings = Settings(database_url=lanes.database_url, broker_url="redis://127.0.0.1:1/0")
    counts = sweep_once(rt.sessions, settings, hours_later, backlog=None, publish=lambda ids: None)
    assert (counts.reclaimed, counts.lost_attempts, counts.released) == (0, 0, 0)
    assert set(lanes.states(ids).values()) == {"batched"}
    assert {a.outcome for a in lanes.attempts(ids)} == {"started"}
    day = next(w for w in lanes.windows() if w.period == "day")
    assert day.reserved_usd == sum(a.reserved_usd for a in lanes.attempts(ids)) > 0


def test_a_provider_batch_stays_within_the_providers_size_limit(lanes: Lanes, monkeypatch):  # type: ignore[no-untyped-def]
    from schemas.job import ChatMessage
    from workers.providers.base import ProviderRequest

    rt = lanes.configure(models_for("google"))
    adapter = next(iter(rt.adapters.values()))
    like = ProviderRequest(
        MODELS["google"], (ChatMessage(role="user", content="question number 0"),), 40
    )
    one = adapter.batch_body_bytes(BatchItem("x", like))
    monkeypatch.setattr(type(adapter), "batch_max_bytes", int(one * 2.5))  # room for two
    ids = lanes.submit(5)
    lanes.run(ids)
    flushed = flush_once(rt, datetime.now(UTC), force=True)
    assert (flushed.created, flushed.items) == (3, 5)  # 2 + 2 + 1
    lanes.drive(ids)
    _assert_books_balance(lanes, ids)
