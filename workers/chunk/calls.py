"""The process's call loop: many provider calls in flight on one asyncio event loop (issue 21).

Owns: `CallLoop` (an event loop on a daemon thread, with one aiohttp session, created on
first use in each process) and `call_loop()`, its per-process instance. A chunk's task thread
hands it all its calls at once and blocks until every one has ended; each call's result is
its reply or the exception it raised, with its duration. Must not: decide anything, touch the
ledger or the health store, or run anything but provider calls on the loop (a blocking step
there would stall every call in flight).

Why: one thread per call in flight (Celery's thread pool) costs a thread switch and the sync
client's locking per call, and httpx's AsyncClient measured 2.1 ms of CPU per call here;
aiohttp on one loop measured 0.2 ms (`make bench`, cpu-bound).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from workers.providers.async_send import complete_async, make_async_session

if TYPE_CHECKING:
    import aiohttp

    from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest

CallResult = tuple["ProviderReply | Exception", float]  # (reply or exception, seconds)


class CallLoop:
    """An event loop thread with one pooled aiohttp session of `max_connections`."""

    def __init__(self, max_connections: int) -> None:
        self.pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="llmq-calls", daemon=True
        )
        self._thread.start()
        opened = asyncio.run_coroutine_threadsafe(self._open(max_connections), self._loop)
        self._session: aiohttp.ClientSession = opened.result()

    async def _open(self, max_connections: int) -> aiohttp.ClientSession:
        return make_async_session(max_connections)  # aiohttp needs the running loop

    def call_all(
        self, calls: Sequence[tuple[ProviderAdapter, ProviderRequest]]
    ) -> list[CallResult]:
        """Run every call concurrently; their results in the same order."""
        if not calls:
            return []
        return asyncio.run_coroutine_threadsafe(self._gather(calls), self._loop).result()

    async def _gather(
        self, calls: Sequence[tuple[ProviderAdapter, ProviderRequest]]
    ) -> list[CallResult]:
        return list(await asyncio.gather(*(self._one(a, r) for a, r in calls)))

    async def _one(self, adapter: ProviderAdapter, request: ProviderRequest) -> CallResult:
        started = time.monotonic()
        try:
            reply: ProviderReply | Exception = await complete_async(adapter, request, self._session)
        except Exception as exc:  # noqa: BLE001 - every failure is the call's result
            reply = exc
        return reply, time.monotonic() - started

    def close(self) -> None:
        """Close the session and stop the loop (tests; a worker just exits)."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._session.close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


_lock = threading.Lock()
_current: CallLoop | None = None


def call_loop(max_connections: int) -> CallLoop:
    """This process's call loop, started on first use (a forked child starts its own)."""
    global _current  # noqa: PLW0603 - one loop per process, like the runtime
    loop = _current
    if loop is not None and loop.pid == os.getpid():
        return loop
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = CallLoop(max_connections)
        return _current
