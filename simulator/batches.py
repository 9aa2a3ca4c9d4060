"""Simulated provider batch APIs (issue 18): the provider-neutral half.

Owns: `SimBatch` (one provider batch: its items as received, its timeline, each item's
outcome), `BatchStore` (every batch and uploaded/produced file of one app), `open_batch`
(validate and answer every item at create time, with the dialect's own chat pipeline: parse,
deterministic completion, render; a seeded per-item error draw), `advance` (the lazy clock:
after `batch_delay_s` the batch ends as `batch_outcome` says: completed, expired with
`batch_done_fraction` of its items done, or failed) and `cancel`. Items that ran are billed
when the batch ends, at the batch price (`SimState.bill`, lane "batch"). Must not: know any
provider's wire format (each dialect's batch module renders objects and routes).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from simulator.providers.base import Dialect, SimError
from simulator.state import SimState
from simulator.textgen import complete, prompt_tokens_of

_ids = itertools.count(1)


@dataclass
class ItemOutcome:
    """What an item got: ok (body, usage) or error (status, body); None = never ran."""

    ok: bool
    status: int
    body: Any
    usage: tuple[int, int] | None = None


@dataclass
class SimBatch:
    id: str
    endpoint: str  # the provider endpoint name (stats, billing)
    model: str
    tag: str | None
    items: list[tuple[str, Any]]  # (custom_id, request body as received)
    created: float
    answers: dict[str, ItemOutcome] = field(default_factory=dict)
    state: str = "in_progress"  # in_progress | completed | expired | failed | cancelled
    ended: float | None = None
    ran: set[str] = field(default_factory=set)  # custom_ids that ran (and are billed)
    meta: dict[str, Any] = field(default_factory=dict)  # dialect's own fields

    @property
    def done(self) -> bool:
        return self.state != "in_progress"


@dataclass
class BatchStore:
    batches: dict[str, SimBatch] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def clear(self) -> None:
        self.batches.clear()
        self.files.clear()


def new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}{hashlib.sha1(str(time.time()).encode()).hexdigest()[:10]}"


def _draw(state: SimState, custom_id: str, batch_id: str) -> float:
    key = f"{state.config.seed}:{batch_id}:{custom_id}".encode()
    return int(hashlib.sha256(key).hexdigest()[:12], 16) / float(16**12)


def open_batch(  # noqa: PLR0913 - the batch and how its items are read
    state: SimState,
    dialect: Dialect,
    endpoint: str,
    request: Any,
    items: list[tuple[str, Any]],
    tag: str | None,
    prefix: str,
) -> SimBatch:
    """Create a batch: each item answered now (revealed and billed when the batch ends)."""
    if not items:
        raise SimError(400, "invalid", "a batch needs at least one request")
    seen = [cid for cid, _ in items]
    if len(set(seen)) != len(seen):
        raise SimError(400, "invalid", "custom_id values must be unique within a batch")
    batch = SimBatch(new_id(prefix), endpoint, "", tag, items, time.time())
    rate = state.config.behaviour(endpoint).batch_item_error_rate
    for cid, body in items:
        batch.answers[cid] = _answer(state, dialect, request, body, batch, cid, rate)
    state.batches.batches[batch.id] = batch
    return batch


def _answer(  # noqa: PLR0913
    state: SimState,
    dialect: Dialect,
    request: Any,
    body: Any,
    batch: SimBatch,
    cid: str,
    rate: float,
) -> ItemOutcome:
    rid = state.next_id()
    try:
        chat = dialect.parse(body, request)
    except SimError as err:
        return ItemOutcome(False, err.status, json.loads(dialect.error(err, rid).body))
    batch.model = batch.model or chat.model
    if _draw(state, cid, batch.id) < rate:
        err = SimError(500, "server")
        return ItemOutcome(False, 500, json.loads(dialect.error(err, rid).body))
    done = complete(chat, prompt_tokens_of(chat))
    rendered = dialect.render(chat, done, rid)
    return ItemOutcome(
        True, 200, json.loads(rendered.body), (done.prompt_tokens, done.completion_tokens)
    )


def advance(state: SimState, batch: SimBatch, now: float | None = None) -> SimBatch:
    """End the batch once its delay has passed (as configured); bills what ran."""
    if batch.done:
        return batch
    now = time.time() if now is None else now
    beh = state.config.behaviour(batch.endpoint)
    if now - batch.created < beh.batch_delay_s:
        return batch
    outcome = beh.batch_outcome
    if outcome == "failed":
        _end(state, batch, "failed", [], now)
    elif outcome == "expired":
        n = int(len(batch.items) * beh.batch_done_fraction)
        _end(state, batch, "expired", [cid for cid, _ in batch.items[:n]], now)
    else:
        _end(state, batch, "completed", [cid for cid, _ in batch.items], now)
    return batch


def cancel(state: SimState, batch: SimBatch) -> SimBatch:
    """Cancel: a batch whose delay has passed completes first; otherwise nothing ran."""
    advance(state, batch)
    if not batch.done:
        _end(state, batch, "cancelled", [], time.time())
    return batch


def _end(state: SimState, batch: SimBatch, how: str, ran: list[str], now: float) -> None:
    batch.state, batch.ended = how, now
    batch.ran = set(ran)
    for cid in ran:
        answer = batch.answers[cid]
        if answer.usage is not None:
            state.bill(batch.endpoint, batch.model, "batch", answer.usage)


def counts(batch: SimBatch) -> dict[str, int]:
    """succeeded / errored / unfinished (expired or cancelled) / processing."""
    if not batch.done:
        return {"processing": len(batch.items), "succeeded": 0, "errored": 0, "unfinished": 0}
    ok = sum(1 for c in batch.ran if batch.answers[c].ok)
    return {
        "processing": 0,
        "succeeded": ok,
        "errored": len(batch.ran) - ok,
        "unfinished": len(batch.items) - len(batch.ran),
    }


def find(state: SimState, batch_id: str) -> SimBatch:
    batch = state.batches.batches.get(batch_id)
    if batch is None:
        raise SimError(404, "not_found", f"batch {batch_id} not found", ctx={"model": batch_id})
    return advance(state, batch)
