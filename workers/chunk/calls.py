"""The process's call loop: many provider calls in flight on one asyncio event loop (issue 21).

Owns: `CallLoop` (an event loop on a daemon thread with one aiohttp session, started on
first use in each process), `call_loop()`, its per-process instance, and `InFlight`, one
chunk's calls as they end. Must not: decide anything, touch the ledger or the health store,
or run anything but provider calls on the loop (a blocking step there stalls every call).

At most `limit` jobs per process are claimed by a chunk and not yet finished (admitted,
in flight, or answered but not yet written): a chunk thread takes slots (`SlotPool`) before
it claims a wave of jobs, and gives each back only after that job's finish is committed
(`InFlight.release`). So a SIGKILLed worker leaves at most `limit` calls unaccounted, as a
one-thread-per-call worker of `limit` threads did (the chaos suite's bound), a cancel still
finds every job not yet in a wave queued, and waiting chunks take free slots by priority (a
small batch's chunk before a bulk one's), then in order.

Why: one thread per call (Celery's thread pool) costs a thread switch and the sync client's
locking per call, and httpx's AsyncClient measured 2.1 ms of CPU per call here; aiohttp on
one loop measured 0.2 ms (`make bench`, cpu-bound).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from workers.providers.async_send import complete_async, make_async_session

if TYPE_CHECKING:
    import aiohttp

    from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest

Done = tuple[int, "ProviderReply | Exception", float]  # (call's index, reply or error, seconds)
GATHER_S = 0.003  # answers ending this close together are finished in one transaction


class SlotPool:
    """The process's call slots, taken by chunk threads before they claim (thread-safe).

    `take` waits its turn by priority (lower first, then first come) until at least `least`
    slots are free, then takes up to `most`. A slot is given back once its call's finish is
    committed (`give`), so claims, calls and unwritten answers never exceed the limit.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._cond = threading.Condition()
        self._turns: list[tuple[int, int]] = []  # waiting (priority, arrival) tickets
        self._arrivals = itertools.count()

    def take(self, most: int, least: int, priority: int = 0) -> int:
        least = max(1, min(least, most, self.limit))
        ticket = (priority, next(self._arrivals))
        with self._cond:
            heapq.heappush(self._turns, ticket)
            while self._turns[0] != ticket or self.free < least:
                self._cond.wait()
            heapq.heappop(self._turns)
            taken = min(self.free, most)
            self.free -= taken
            self._cond.notify_all()
            return taken

    def give(self, n: int) -> None:
        if n <= 0:
            return
        with self._cond:
            self.free += n
            self._cond.notify_all()


class InFlight:
    """One chunk's calls: read them as they end (`next_done`), give their slots back once
    their finish is written (`release`), or `abandon` the rest."""

    def __init__(self, owner: CallLoop, count: int) -> None:
        self._owner = owner
        self.results: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self.left = count
        self.abandoned = False  # set on the loop thread

    def next_done(self, linger_s: float = GATHER_S) -> list[Done]:
        """Blocks for the next ended call, then takes every other one that ends less than
        `linger_s` after the previous (answers of one wave arrive together: one finishing
        transaction for all of them costs less CPU than one each)."""
        done = [self.results.get()]
        while len(done) < self.left:
            try:
                done.append(self.results.get(timeout=linger_s))
            except queue.Empty:
                break
        self.left -= len(done)
        return done

    def release(self, n: int) -> None:
        """Give back the slots of `n` calls whose finish is written (or given up)."""
        self._owner.slots.give(n)

    def abandon(self) -> None:
        """The chunk stopped reading (its finish failed): every call not read yet gives its
        slot back as it ends; its answer is left to the lease and the sweeper."""
        self._owner.loop.call_soon_threadsafe(self._abandon)

    def _abandon(self) -> None:  # on the loop thread: no call can end while this runs
        self.abandoned = True
        unread = 0
        while True:
            try:
                self.results.get_nowait()
            except queue.Empty:
                break
            unread += 1
        self._owner.slots.give(unread)


class CallLoop:
    """An event loop thread with one pooled aiohttp session; `limit` calls at once."""

    def __init__(self, limit: int) -> None:
        self.pid = os.getpid()
        self.limit = limit
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="llmq-calls", daemon=True
        )
        self._thread.start()
        self.slots = slot_pool(limit)
        opened = asyncio.run_coroutine_threadsafe(self._open(limit), self.loop)
        self._session = opened.result()

    async def _open(self, limit: int) -> aiohttp.ClientSession:
        return make_async_session(limit)  # aiohttp needs the running loop

    def start(self, calls: Sequence[tuple[ProviderAdapter, ProviderRequest]]) -> InFlight:
        """Send every call now (their slots are taken already); read the results from the
        returned `InFlight`."""
        inflight = InFlight(self, len(calls))
        if calls:
            asyncio.run_coroutine_threadsafe(self._spawn(calls, inflight), self.loop)
        return inflight

    async def _spawn(
        self, calls: Sequence[tuple[ProviderAdapter, ProviderRequest]], to: InFlight
    ) -> None:
        for i, (adapter, request) in enumerate(calls):
            asyncio.get_running_loop().create_task(self._one(i, adapter, request, to))

    async def _one(
        self, index: int, adapter: ProviderAdapter, request: ProviderRequest, to: InFlight
    ) -> None:
        started = time.monotonic()
        try:
            reply: ProviderReply | Exception = await complete_async(adapter, request, self._session)
        except Exception as exc:  # noqa: BLE001 - every failure is the call's result
            reply = exc
        if to.abandoned:
            self.slots.give(1)
            return
        to.results.put((index, reply, time.monotonic() - started))

    def close(self) -> None:
        """Close the session and stop the loop (tests; a worker just exits)."""
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._session.close(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


_lock = threading.RLock()  # call_loop builds a CallLoop, which asks slot_pool
_loops: dict[tuple[int, int], CallLoop] = {}
_pools: dict[tuple[int, int], SlotPool] = {}


def call_loop(limit: int) -> CallLoop:
    """This process's call loop of `limit` slots, started on first use (a forked child starts
    its own; a worker has one limit, tests building several runtimes get one loop each)."""
    key = (os.getpid(), limit)
    loop = _loops.get(key)
    if loop is not None:
        return loop
    with _lock:
        if key not in _loops:
            _loops[key] = CallLoop(limit)
        return _loops[key]


def slot_pool(limit: int) -> SlotPool:
    """This process's call slots (shared by chunks and one-job tasks)."""
    key = (os.getpid(), limit)
    with _lock:
        if key not in _pools:
            _pools[key] = SlotPool(limit)
        return _pools[key]


@contextmanager
def one_slot(limit: int, priority: int = 0) -> Iterator[None]:
    """Hold one call slot while a one-job task runs (its call counts against the limit)."""
    pool = slot_pool(limit)
    pool.take(1, 1, priority)
    try:
        yield
    finally:
        pool.give(1)
