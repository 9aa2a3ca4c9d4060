"""A short-lived, per-process memo of running batches' job counts, so that many clients
polling one batch cost the database one GROUP BY per batch per `ttl_s`, not one per poll.

Owns: `LiveMemo` (time-to-live entries, one computation in flight per key; the other
callers wait for it). It holds nothing that is not in Postgres and nothing that must
survive: a replica that restarts recomputes. The batch object's own row (status, files) is
never memoised, so a cancel or a finalize shows at once; only the counts may be `ttl_s` old.
Must not: do I/O itself (the caller's `compute` does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 10_000


class LiveMemo(Generic[T]):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s  # seconds; 0 disables the memo
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, T]] = {}
        self._inflight: dict[str, threading.Event] = {}

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """The value for `key`, computed at most once per `ttl_s` by one caller at a time."""
        if self.ttl_s <= 0:
            return compute()
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            event = self._inflight.get(key)
            leader = event is None
            if leader:
                event = self._inflight[key] = threading.Event()
        assert event is not None
        if not leader:
            event.wait(10.0)
            with self._lock:
                hit = self._data.get(key)
            return hit[1] if hit is not None else compute()
        try:
            value = compute()
            with self._lock:
                self._prune()
                self._data[key] = (time.monotonic() + self.ttl_s, value)
            return value
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()

    def forget(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def _prune(self) -> None:
        if len(self._data) < MAX_ENTRIES:
            return
        now = time.monotonic()
        for key in [k for k, (until, _) in self._data.items() if until <= now]:
            del self._data[key]
        if len(self._data) >= MAX_ENTRIES:
            self._data.clear()
