"""The process's call loop: many provider calls in flight on one asyncio event loop (issue 21).

Owns: `CallLoop` (an event loop on a daemon thread with one aiohttp session, started on
first use in each process), `call_loop()`, its per-process instance, and `InFlight`, one
chunk's calls as they end. Must not: decide anything, touch the ledger or the health store,
or run anything but provider calls on the loop (a blocking step there stalls every call).

At most `limit` calls per process are in flight OR answered but not yet written: a call
takes a slot before it is sent, and the chunk gives the slot back only after its finish is
committed (`InFlight.release`). So a SIGKILLed worker loses at most `limit` paid-for answers,
as a one-thread-per-call worker of `limit` threads did (the chaos suite's bound). Waiting
calls take free slots by priority (a small batch's chunk before a bulk one's), then in
order.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workers.providers.async_send import complete_async, make_async_session

if TYPE_CHECKING:
    import aiohttp

    from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest

Done = tuple[int, "ProviderReply | Exception", float]  # (call's index, reply or error, seconds)


class _Slots:
    """A semaphore whose waiters are served lowest priority first, FIFO within a priority.
    Used on the loop thread only."""

    def __init__(self, limit: int) -> None:
        self.free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), waiter))
        await waiter  # the slot is handed over by `release`

    def release(self, n: int) -> None:
        self.free += n
        while self.free > 0 and self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                self.free -= 1
                waiter.set_result(None)


class InFlight:
    """One chunk's calls: read them as they end (`next_done`), give their slots back once
    their finish is written (`release`), or `abandon` the rest."""

    def __init__(self, owner: CallLoop, count: int) -> None:
        self._owner = owner
        self.results: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self.left = count
        self.abandoned = False  # set on the loop thread

    def next_done(self) -> list[Done]:
        """Blocks for the next ended call, then takes every other one already ended."""
        done = [self.results.get()]
        while True:
            try:
                done.append(self.results.get_nowait())
            except queue.Empty:
                break
        self.left -= len(done)
        return done

    def release(self, n: int) -> None:
        """Give back the slots of `n` calls whose finish is written (or given up)."""
        if n:
            self._owner.loop.call_soon_threadsafe(self._owner.slots.release, n)

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
        self._owner.slots.release(unread)


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
        opened = asyncio.run_coroutine_threadsafe(self._open(limit), self.loop)
        self._session, self.slots = opened.result()

    async def _open(self, limit: int) -> tuple[aiohttp.ClientSession, _Slots]:
        return make_async_session(limit), _Slots(limit)  # aiohttp needs the running loop

    def start(
        self, calls: Sequence[tuple[ProviderAdapter, ProviderRequest]], priority: int = 0
    ) -> InFlight:
        """Send every call as slots free up; read the results from the returned `InFlight`."""
        inflight = InFlight(self, len(calls))
        if calls:
            asyncio.run_coroutine_threadsafe(self._spawn(calls, priority, inflight), self.loop)
        return inflight

    async def _spawn(
        self, calls: Sequence[tuple[ProviderAdapter, ProviderRequest]], priority: int, to: InFlight
    ) -> None:
        for i, (adapter, request) in enumerate(calls):
            asyncio.get_running_loop().create_task(self._one(i, adapter, request, priority, to))

    async def _one(  # noqa: PLR0913 - one call and where its result goes
        self,
        index: int,
        adapter: ProviderAdapter,
        request: ProviderRequest,
        priority: int,
        to: InFlight,
    ) -> None:
        await self.slots.acquire(priority)
        started = time.monotonic()
        try:
            reply: ProviderReply | Exception = await complete_async(adapter, request, self._session)
        except Exception as exc:  # noqa: BLE001 - every failure is the call's result
            reply = exc
        if to.abandoned:
            self.slots.release(1)
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


_lock = threading.Lock()
_current: CallLoop | None = None


def call_loop(limit: int) -> CallLoop:
    """This process's call loop, started on first use (a forked child starts its own)."""
    global _current  # noqa: PLW0603 - one loop per process, like the runtime
    loop = _current
    if loop is not None and loop.pid == os.getpid():
        return loop
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = CallLoop(limit)
        return _current
