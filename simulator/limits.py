"""Rate and concurrency limits enforced by the simulator itself.

This module owns ``SlidingWindow`` (requests and tokens admitted in the last 60 s, used both to
enforce ``rpm``/``tpm`` and to fill rate-limit headers) and ``Gate`` (a ``max_concurrency``
slot pool: ``queue`` mode waits for a slot, ``reject`` mode answers 429).

Only admitted requests count against a window; a request's tokens are its prompt tokens plus
its (deterministic) completion tokens. When a request does not fit, the wait returned is the
time until enough earlier entries leave the window (the full 60 s if it can never fit), rounded
up to the millisecond. Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from simulator.providers.base import RateSnapshot

WINDOW_S = 60.0
DEFAULT_RPM = 1_000_000
DEFAULT_TPM = 1_000_000_000


def _ceil_ms(seconds: float) -> float:
    return max(0.001, math.ceil(seconds * 1000) / 1000)


class SlidingWindow:
    """Requests and tokens admitted during the last ``WINDOW_S`` seconds."""

    __slots__ = ("requests", "tokens", "token_sum")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.tokens: deque[tuple[float, int]] = deque()
        self.token_sum = 0

    def _prune(self, now: float) -> None:
        cutoff = now - WINDOW_S
        requests = self.requests
        while requests and requests[0] <= cutoff:
            requests.popleft()
        tokens = self.tokens
        while tokens and tokens[0][0] <= cutoff:
            self.token_sum -= tokens.popleft()[1]

    def blocked(
        self, now: float, rpm: int | None, tpm: int | None, tokens: int
    ) -> tuple[float, str, int] | None:
        """``(wait_s, "requests"|"tokens", limit)`` if the request does not fit, else None."""
        self._prune(now)
        if rpm is not None and len(self.requests) >= rpm:
            oldest_to_free = self.requests[len(self.requests) - rpm]
            return _ceil_ms(oldest_to_free + WINDOW_S - now), "requests", rpm
        if tpm is not None and self.token_sum + tokens > tpm:
            if tokens > tpm:
                return WINDOW_S, "tokens", tpm
            need = self.token_sum + tokens - tpm
            freed = 0
            for stamp, count in self.tokens:
                freed += count
                if freed >= need:
                    return _ceil_ms(stamp + WINDOW_S - now), "tokens", tpm
            return WINDOW_S, "tokens", tpm
        return None

    def admit(self, now: float, tokens: int) -> None:
        """Count one admitted request of ``tokens`` tokens."""
        self.requests.append(now)
        self.tokens.append((now, tokens))
        self.token_sum += tokens

    def used_requests(self) -> int:
        """Requests currently in the window (call after ``blocked``/``admit``)."""
        return len(self.requests)

    def snapshot(self, now: float, rpm: int | None, tpm: int | None) -> RateSnapshot:
        """Numbers for rate-limit headers; resets = time until the oldest entry leaves."""
        limit_r = rpm if rpm is not None else DEFAULT_RPM
        limit_t = tpm if tpm is not None else DEFAULT_TPM
        reset_r = self.requests[0] + WINDOW_S - now if self.requests else 0.0
        reset_t = self.tokens[0][0] + WINDOW_S - now if self.tokens else 0.0
        return RateSnapshot(
            limit_requests=limit_r,
            remaining_requests=max(0, limit_r - len(self.requests)),
            reset_requests_s=max(0.0, reset_r),
            limit_tokens=limit_t,
            remaining_tokens=max(0, limit_t - self.token_sum),
            reset_tokens_s=max(0.0, reset_t),
        )


class Gate:
    """``max_concurrency`` slots for one provider."""

    __slots__ = ("limit", "_sem")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)

    def full(self) -> bool:
        """True when every slot is taken (reject mode answers 429)."""
        return self._sem.locked()

    async def acquire(self) -> None:
        """Wait for a slot (queue mode)."""
        await self._sem.acquire()

    def release(self) -> None:
        """Give a slot back."""
        self._sem.release()
