"""The zero-overshoot proof: many threads, each with its own session, race `reserve` and a
simulated call + settle against a budget whose worst cases fit about 50 of 200 calls.

The "provider" is the simulator's own token arithmetic (simulator.textgen), priced the same way
as the reservation, so actual usage is always at or under the reserved worst case, as with the
real simulator. Verdict: spend at or under every limit, nothing left reserved, the windows'
spend equal to the attempts ledger and to what the "provider" billed, refused reservations
leave nothing behind, and the budget was not refused early.
"""

from __future__ import annotations

import queue
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session

from core.ledger.db import make_engine, make_sessionmaker, session_scope
from core.ledger.models import Attempt
from core.ledger.quota_limits_repo import set_limits
from core.ledger.quota_repo import reserve, settle
from schemas.job import ChatMessage, Usage
from simulator.textgen import count_prompt_tokens, natural_completion_tokens
from workers.pricing import Price, cost
from workers.quota import prompt_token_bound, worst_case

from .checks import assert_budget_holds, race, seed_batch

PRICE = Price(Decimal("3"), Decimal("15"), "test", "2025-01-01")
N_JOBS = 200
FITS = 50  # the budget holds this many average worst cases
MAX_TOKENS = 24
ALLOWANCE = 8
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Call:
    worst_tokens: int
    worst_usd: Decimal
    prompt: int  # what the simulator bills
    completion: int
    usd: Decimal
    job_id: uuid.UUID | None = None

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion


def _text(i: int) -> str:
    # Mixed one- and two-byte characters, 150-550 characters long.
    return ("budget é zéro " * 60)[: 150 + (i * 37) % 400]


def make_call(i: int) -> Call:
    """Job i's worst case, and what the simulator would bill for it at the same price."""
    text = _text(i)
    bound = prompt_token_bound([ChatMessage(role="user", content=text)], None, ALLOWANCE)
    worst_tokens, worst_usd = worst_case(bound, MAX_TOKENS, PRICE)
    prompt = count_prompt_tokens([text], 1)
    completion = min(MAX_TOKENS, natural_completion_tokens(prompt))
    usd = cost(Usage(prompt_tokens=prompt, completion_tokens=completion), PRICE, NOW)
    assert usd is not None and usd == usd.quantize(Decimal("1e-8"))  # exact at this price
    call = Call(worst_tokens, worst_usd, prompt, completion, usd)
    assert call.tokens <= worst_tokens and call.usd <= worst_usd
    return call


def _record(session: Session, call: Call, tenant: str, batch_id: uuid.UUID) -> None:
    """What the pipeline does after a call, in one transaction: attempt row + settlement."""
    session.add(
        Attempt(
            job_id=call.job_id, attempt_no=1, provider="openai", model="m", deployment="openai/m",
            outcome="succeeded", started_at=NOW, prompt_tokens=call.prompt,
            completion_tokens=call.completion, cost_usd=call.usd, tenant=tenant,
            reserved_usd=call.worst_usd, reserved_tokens=call.worst_tokens,
        )
    )  # fmt: skip
    settle(session, tenant, batch_id, NOW, call.worst_tokens, call.worst_usd, call.tokens, call.usd)


@dataclass(frozen=True)
class Budget:
    tenant: str
    batch_id: uuid.UUID
    batch_cap: Decimal | None
    limit: str  # usd | tokens | batch
    amount: Decimal | int

    @property
    def window(self) -> str:
        return {"usd": "day", "tokens": "month", "batch": "batch"}[self.limit]

    def size(self, call: Call) -> tuple[Decimal | int, Decimal | int]:
        """(worst, actual) of a call in the limited unit."""
        if self.limit == "tokens":
            return call.worst_tokens, call.tokens
        return call.worst_usd, call.usd


def _setup(factory, limit: str, calls: list[Call]) -> tuple[Budget, list[Call]]:  # type: ignore[no-untyped-def]
    """A tenant, a batch of len(calls) jobs, and a budget that fits FITS average worst cases."""
    tenant = f"race-{limit}"
    if limit == "tokens":
        amount: Decimal | int = sum(c.worst_tokens for c in calls) * FITS // len(calls)
    else:
        amount = (sum(c.worst_usd for c in calls) * FITS / len(calls)).quantize(Decimal("1e-8"))
    cap = amount if limit == "batch" else None
    with session_scope(factory) as s:
        batch_id, job_ids = seed_batch(s, tenant, len(calls), max_cost_usd=cap)
        if limit == "usd":
            set_limits(s, tenant, "day", amount, None, NOW)
        elif limit == "tokens":
            set_limits(s, tenant, "month", None, amount, NOW)
    calls = [replace(c, job_id=j) for c, j in zip(calls, job_ids, strict=True)]
    return Budget(tenant, batch_id, cap, limit, amount), calls


def _try(session: Session, b: Budget, call: Call) -> bool:
    """Reserve; if granted, "call" the provider and settle. One transaction each, like the
    pipeline (the reservation commits before the call)."""
    with session.begin():
        ok = reserve(
            session, b.tenant, b.batch_id, b.batch_cap, call.worst_tokens, call.worst_usd, NOW
        )
    if ok:
        with session.begin():
            _record(session, call, b.tenant, b.batch_id)
    return ok


def run_race(pg_url: str, n_threads: int, limit: str) -> None:
    """Race N_JOBS calls on n_threads against a budget on `limit` (usd | tokens | batch)."""
    engine = make_engine(pg_url, pool_size=n_threads)
    factory = make_sessionmaker(engine)
    try:
        b, calls = _setup(factory, limit, [make_call(i) for i in range(N_JOBS)])
        # The budget binds: all calls together would bill more than it allows.
        assert sum(b.size(c)[1] for c in calls) > b.amount
        todo: queue.Queue[Call] = queue.Queue()
        for c in calls:
            todo.put(c)
        accepted: list[Call] = []
        refused: list[Call] = []

        def worker(_: int) -> None:
            with factory() as session:  # one session per thread
                while True:
                    try:
                        call = todo.get_nowait()
                    except queue.Empty:
                        return
                    (accepted if _try(session, b, call) else refused).append(call)

        assert race(n_threads, worker) == []
        assert len(accepted) + len(refused) == N_JOBS
        assert refused, "the budget never ran out: the test would prove nothing"
        _verdict(factory, b, accepted)

        # Drain the refused ones one by one: with nothing else reserved, a call is refused
        # exactly when it does not fit, so no refused reservation left anything behind.
        with factory() as session:
            for call in refused:
                if _try(session, b, call):
                    accepted.append(call)
                    continue
                with session.begin():
                    w = assert_budget_holds(session, b.tenant, NOW, b.batch_id)[b.window]
                    spent = w.spent_tokens if limit == "tokens" else w.spent_usd
                    assert spent + b.size(call)[0] > b.amount, "refused although it fits"
        _verdict(factory, b, accepted)
    finally:
        engine.dispose()


def _verdict(factory, b: Budget, accepted: list[Call]) -> None:  # type: ignore[no-untyped-def]
    """Zero overshoot: the ledger and the "provider's" bill agree and are within budget."""
    with session_scope(factory) as s:
        found = assert_budget_holds(s, b.tenant, NOW, b.batch_id)
    billed_usd = sum((c.usd for c in accepted), Decimal(0))
    billed_tokens = sum(c.tokens for c in accepted)
    w = found[b.window]
    assert (w.spent_usd, w.spent_tokens) == (billed_usd, billed_tokens)
    assert sum(b.size(c)[1] for c in accepted) <= b.amount


@pytest.mark.parametrize("n_threads", [8, 16, 32, 48, 64])
def test_usd_budget_is_never_overshot(clean_db: str, n_threads: int) -> None:
    run_race(clean_db, n_threads, "usd")


def test_token_budget_is_never_overshot(clean_db: str) -> None:
    run_race(clean_db, 64, "tokens")


def test_batch_max_cost_is_never_overshot(clean_db: str) -> None:
    run_race(clean_db, 64, "batch")


def test_embedded_sqlite_budget_is_never_overshot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The embedded mode's worker threads share one SQLite file: same guarantee."""
    from core.ledger.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    run_race(url, 8, "usd")
