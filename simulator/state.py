"""Mutable simulator state: configuration in force, RNG, counters, request log, limiters.

This module owns ``SimState``, shared by every handler of one app (single event loop, so no
locks): the current ``SimConfig`` (and the one the app started with, for resets), the seeded
``random.Random``, resolved per-(provider, model) behaviours (cached until the config changes),
sliding windows and concurrency gates, request ids, the stats counters behind
``GET /_sim/stats`` and the bounded request-log ring buffer behind ``GET /_sim/log``.

Stats shape::

    {"providers": {"openai": {"requests": N, "by_status": {"200": n, "429": n},
                              "by_kind": {"ok": n, "rpm": n, ...},
                              "models": {"gpt-x": {"requests": n, "served": n_200_billed,
                                                   "prompt_tokens": P,
                                                   "completion_tokens": C}}}},
     "total_requests": N, "total_served": N_200_billed,
     "billed": [{"provider", "model", "day", "requests", "prompt_tokens", "completion_tokens",
                 "cached_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd"}]}

Log entry: ``{"t": unix arrival time, "provider", "model", "status", "retry_after": float|null,
"kind", "request_id"}``; ``kind`` is ``ok``, ``malformed``, ``invalid_json``, ``refusal``, or
the error cause (``auth_missing``, ``auth_bad``, ``invalid``, ``not_found``, ``context``,
``rpm``, ``tpm``, ``concurrency``, ``injected``, ``down``, ``timeout``). With bodies asked for,
an entry whose request is among the latest ``body_log_size`` also has ``"request": {"path",
"headers" (the non-secret ones that change meaning: ``anthropic-beta``, ``anthropic-version``),
"body", "features"}``: the JSON body exactly as received (or ``"raw"`` text when it did not
parse) and, once the dialect accepted it, what it asked for in neutral terms
(``tooling.Features.summary``: json, schema, tools, tool_choice, stop, images, seed, ...).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import secrets
import time
from collections import OrderedDict, deque
from decimal import Decimal
from typing import Any

from simulator.billing import Billing
from simulator.config import ResolvedBehaviour, SimConfig
from simulator.limits import Gate, SlidingWindow
from simulator.schemagen import digest

LogEntry = tuple[float, str, str, int, float | None, str, str]
_MAX_SEEN = 200_000

FAILURE_ORDER: tuple[tuple[str, int, str], ...] = (
    ("rate_timeout", 504, "timeout"),
    ("rate_429", 429, "rate_limit"),
    ("rate_500", 500, "server"),
    ("rate_503", 503, "unavailable"),
    ("rate_529", 529, "overloaded"),
    ("rate_malformed", 200, "malformed"),
)


class _ProviderStats:
    __slots__ = ("requests", "by_status", "by_kind", "models")

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}
        self.models: dict[str, list[int]] = {}  # [requests, served, prompt, completion]


class SimState:
    """Everything one simulator app remembers between requests."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.initial_config = config or SimConfig()
        self.config = self.initial_config
        self.rng = random.Random(self.config.seed)
        self._resolved: dict[tuple[str, str], ResolvedBehaviour] = {}
        self.windows: dict[tuple[str, str], SlidingWindow] = {}
        self.gates: dict[str, Gate] = {}
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self.stats: dict[str, _ProviderStats] = {}
        self.log: deque[LogEntry] = deque(maxlen=self.config.log_size)
        self.total_requests = 0
        self.total_served = 0
        self.bodies: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.seen: dict[str, int] = {}
        # issue 18: provider batches and files, and what was billed per (provider, model, lane)
        from simulator.batches import BatchStore

        self.batches = BatchStore()
        self.billing: dict[tuple[str, str, str], list[Any]] = {}
        # issue 19: the provider's own books per model and UTC day (token classes, genai-prices
        # cost), behind the usage-report endpoints
        self.books = Billing()

    # configuration -------------------------------------------------------------------------

    def set_config(self, config: SimConfig, *, reseed: bool = False) -> None:
        """Install ``config`` (drops cached behaviours; reseeds when asked or seed changed)."""
        if reseed or config.seed != self.config.seed:
            self.rng = random.Random(config.seed)
        if config.log_size != self.config.log_size:
            self.log = deque(self.log, maxlen=config.log_size)
        self.config = config
        self._resolved.clear()

    def resolved(self, provider: str, model: str) -> ResolvedBehaviour:
        """Effective behaviour for (provider, model), cached."""
        key = (provider, model)
        found = self._resolved.get(key)
        if found is None:
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            found = self.config.behaviour(provider).resolve(model)
            self._resolved[key] = found
        return found

    def reset(self, *, behaviour: bool = False) -> None:
        """Clear counters, log, windows and gates; reseed; optionally restore the start config."""
        self.stats.clear()
        self.books.clear()
        self.log.clear()
        self.bodies.clear()
        self.seen.clear()
        self.windows.clear()
        self.gates.clear()
        self.total_requests = 0
        self.total_served = 0
        self.batches.clear()
        self.billing.clear()
        self.set_config(self.initial_config if behaviour else self.config, reseed=True)

    # per-request helpers -------------------------------------------------------------------

    def next_id(self) -> str:
        """A unique request id (hex)."""
        return f"{self._id_prefix}{next(self._ids):012x}"

    def window(self, provider: str, model: str, per_model: bool) -> SlidingWindow:
        """The sliding window for the provider (or for the model when it has own limits)."""
        key = (provider, model if per_model else "")
        found = self.windows.get(key)
        if found is None:
            found = self.windows[key] = SlidingWindow()
        return found

    def gate(self, provider: str, limit: int) -> Gate:
        """The concurrency gate for ``provider`` sized ``limit`` (rebuilt if the size changed)."""
        found = self.gates.get(provider)
        if found is None or found.limit != limit:
            found = self.gates[provider] = Gate(limit)
        return found

    def roll(self, beh: ResolvedBehaviour) -> tuple[int, str] | None:
        """Draw one injected outcome: ``(status, kind)`` or None for a normal reply."""
        if not beh.any_failure:
            return None
        draw = self.rng.random()
        edge = 0.0
        for field, status, kind in FAILURE_ORDER:
            edge += getattr(beh, field)
            if draw < edge:
                return status, kind
        return None

    def content_fault(self, beh: ResolvedBehaviour, raw: bytes) -> str | None:
        """``"refusal"``, ``"invalid_json"`` or None for a request (``raw`` = path + body bytes):
        a draw from (seed, request, how often that request was seen), so reproducible for a
        run and fresh for a retry."""
        if beh.rate_refusal <= 0 and beh.rate_invalid_json <= 0:
            return None
        body_key = hashlib.sha256(raw).hexdigest()
        if len(self.seen) > _MAX_SEEN:
            self.seen.clear()
        n = self.seen.get(body_key, 0)
        self.seen[body_key] = n + 1
        draw = int(digest(str(self.config.seed), body_key, str(n))[:12], 16) / float(16**12)
        if draw < beh.rate_refusal:
            return "refusal"
        if draw < beh.rate_refusal + beh.rate_invalid_json:
            return "invalid_json"
        return None

    def keep_body(self, request_id: str, request: dict[str, Any]) -> None:
        """Remember a request as received (bounded by ``body_log_size``)."""
        limit = self.config.body_log_size
        if limit <= 0:
            return
        self.bodies[request_id] = request
        while len(self.bodies) > limit:
            self.bodies.popitem(last=False)

    def note_features(self, request_id: str, summary: dict[str, Any]) -> None:
        """Attach the parsed request's neutral feature summary to its kept body."""
        kept = self.bodies.get(request_id)
        if kept is not None:
            kept["features"] = summary

    def jitter_s(self, beh: ResolvedBehaviour) -> float:
        """Latency for this request in seconds (latency plus uniform +-jitter, >= 0)."""
        latency = beh.latency_ms
        if beh.latency_jitter_ms > 0:
            latency += self.rng.uniform(-beh.latency_jitter_ms, beh.latency_jitter_ms)
        return max(0.0, latency) / 1000.0

    # recording -----------------------------------------------------------------------------

    def record(
        self,
        entry: LogEntry,
        usage: tuple[int, ...] | None = None,
    ) -> None:
        """Count one finished request; ``usage`` when billed: (prompt, completion) or
        (prompt, completion, cached, cache_write, reasoning)."""
        arrival, provider, model, status, _, kind, _ = entry
        self.log.append(entry)
        self.total_requests += 1
        stats = self.stats.get(provider)
        if stats is None:
            stats = self.stats[provider] = _ProviderStats()
        stats.requests += 1
        key = str(status)
        stats.by_status[key] = stats.by_status.get(key, 0) + 1
        stats.by_kind[kind] = stats.by_kind.get(kind, 0) + 1
        if not model:
            return
        counters = stats.models.get(model)
        if counters is None:
            counters = stats.models[model] = [0, 0, 0, 0]
        counters[0] += 1
        if usage is not None:
            self.total_served += 1
            counters[1] += 1
            counters[2] += usage[0]
            counters[3] += usage[1]
            self.bill(provider, model, "sync", usage, arrival)

    def bill(
        self,
        provider: str,
        model: str,
        lane: str,
        usage: tuple[int, ...],
        at: float | None = None,
    ) -> None:
        """Count one billed call at the configured price (lane "batch": the batch price), and
        book it in the provider's day books (`usage`: (prompt, completion[, cached,
        cache_write, reasoning]); `at`: unix arrival time, default now)."""
        billed = (*usage, 0, 0, 0)[:5]
        self.books.add(provider, model, time.time() if at is None else at, billed, lane == "batch")  # type: ignore[arg-type]
        row = self.billing.setdefault((provider, model, lane), [0, 0, 0, Decimal(0)])
        row[0] += 1
        row[1] += usage[0]
        row[2] += usage[1]
        row[3] += self.config.price_of(model, lane == "batch", (usage[0], usage[1]))

    def billing_json(self) -> list[dict[str, Any]]:
        return [
            {"provider": p, "model": m, "lane": lane, "requests": r[0], "prompt_tokens": r[1],
             "completion_tokens": r[2], "usd": str(r[3])}
            for (p, m, lane), r in sorted(self.billing.items())
        ]  # fmt: skip

    def stats_json(self) -> dict[str, Any]:
        """The ``GET /_sim/stats`` document."""
        providers: dict[str, Any] = {}
        for name, stats in self.stats.items():
            providers[name] = {
                "requests": stats.requests,
                "by_status": dict(stats.by_status),
                "by_kind": dict(stats.by_kind),
                "models": {
                    model: {
                        "requests": c[0],
                        "served": c[1],
                        "prompt_tokens": c[2],
                        "completion_tokens": c[3],
                    }
                    for model, c in stats.models.items()
                },
            }
        return {
            "providers": providers,
            "total_requests": self.total_requests,
            "total_served": self.total_served,
            "billing": self.billing_json(),
            "billed": self.books.as_json(),
        }

    def log_json(
        self,
        provider: str | None,
        model: str | None,
        limit: int | None,
        bodies: bool = False,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """The last ``limit`` log entries (optionally filtered), oldest arrival first."""
        picked: list[LogEntry] = []
        want = limit if limit is not None and limit > 0 else len(self.log)
        for entry in reversed(self.log):
            if provider and entry[1] != provider:
                continue
            if model and entry[2] != model:
                continue
            if kind and entry[5] != kind:
                continue
            if bodies and entry[6] not in self.bodies:
                continue
            picked.append(entry)
            if len(picked) >= want:
                break
        picked.sort(key=lambda e: e[0])
        out = [
            {
                "t": e[0],
                "provider": e[1],
                "model": e[2],
                "status": e[3],
                "retry_after": e[4],
                "kind": e[5],
                "request_id": e[6],
            }
            for e in picked
        ]
        if bodies:
            for item in out:
                item["request"] = self.bodies[item["request_id"]]
        return out
