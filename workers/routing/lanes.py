"""Lanes (issue 18): the sync lane, or a provider's batch API at its batch price. Pure.

Owns: `batch_price` (the batch lane's price from the sync price, what genai-prices knows for
batch processing, and the configured discount), `choose_batch` (which candidate, if any, goes
to a batch lane, and why not otherwise) and `pull_back_at` (when an item still waiting in a
provider batch must return to the sync lane). Must not: touch Redis, the database, the clock
(callers pass `now`) or any provider (a deployment's batch API is a flag passed in).

The rule: a job with a deadline may take a batch lane while `deadline - now > window_s +
margin_s` (the time llmq expects a provider batch to take, plus the time kept in hand for the
sync lane); a job without a deadline never does. Among the plan's candidates whose provider has
a batch API, the cheapest by estimated batch cost goes first, if it is not dearer than the
plan's first (sync) candidate. An item still in a provider batch at `deadline - margin_s` is
taken back and finished on the sync lane.

Why not "deadline - now > the provider's 24 h window": a `--deadline 24h` batch (the issue's own
example) would then never take the lane. llmq does not rely on the provider's window to meet a
deadline: the poller takes unfinished items back at `deadline - margin_s`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from workers.pricing import Price
from workers.routing.select import Candidate, estimate_cost

Lane = Literal["sync", "batch"]


def batch_price(sync: Price | None, known: Price | None, discount: Decimal) -> Price | None:
    """The batch lane's price for a deployment whose sync price is `sync`.

    Args:
        sync: the sync price (None = unknown: the batch price is unknown too).
        known: what genai-prices says for batch processing, or None. genai-prices falls back
            to the standard rates where a model has no batch variant; a "batch" price equal
            to the sync price is therefore taken as unknown, never as the price.
        discount: the batch price as a share of the sync price, for the rest (0 < d <= 1).
    """
    if sync is None:
        return None
    if known is not None and _cheaper(known, sync):
        return known
    return Price(
        sync.input_per_mtok * discount,
        sync.output_per_mtok * discount,
        source=f"{sync.source} x batch_discount {discount}",
        version=sync.version,
    )


def _cheaper(a: Price, b: Price) -> bool:
    not_dearer = a.input_per_mtok <= b.input_per_mtok and a.output_per_mtok <= b.output_per_mtok
    return not_dearer and (a.input_per_mtok, a.output_per_mtok) != (
        b.input_per_mtok,
        b.output_per_mtok,
    )


def lane_open(
    deadline: datetime | None, now: datetime, enabled: bool, window_s: float, margin_s: float
) -> bool:
    """Whether a job may take a batch lane now (see the module docstring)."""
    if not enabled or deadline is None:
        return False
    return (deadline - now).total_seconds() > window_s + margin_s


@dataclass(frozen=True, slots=True)
class BatchChoice:
    """The candidate sent to its provider's batch lane, at its batch price."""

    candidate: Candidate
    price: Price | None
    est_cost_usd: Decimal | None


def choose_batch(
    plan: Sequence[Candidate],
    has_batch_api: Callable[[str], bool],
    batch_prices: Callable[[str], Price | None],
) -> BatchChoice | None:
    """The batch-capable candidate with the lowest estimated batch cost, or None when there is
    none, or when the plan's first (sync) candidate is cheaper still (a free local model)."""
    best: BatchChoice | None = None
    for cand in plan:
        if not has_batch_api(cand.deployment_id):
            continue
        price = batch_prices(cand.deployment_id)
        est = estimate_cost(price, cand.est_prompt_tokens, cand.max_tokens)
        if est is None:
            continue  # an unpriced lane cannot be shown to be cheaper
        if best is None or (best.est_cost_usd is not None and est < best.est_cost_usd):
            best = BatchChoice(cand, price, est)
    if best is None or not plan:
        return None
    first = plan[0].est_cost_usd
    if first is not None and best.est_cost_usd is not None and first < best.est_cost_usd:
        return None
    return best


def pull_back_at(deadline: datetime, margin_s: float) -> datetime:
    """When an item still waiting in a provider batch goes back to the sync lane."""
    return deadline - timedelta(seconds=margin_s)


def flush_due(pending: int, oldest_age_s: float, flush_after_s: float, max_jobs: int) -> bool:
    """Whether a deployment's pending items are sent as a provider batch now."""
    return pending > 0 and (pending >= max_jobs or oldest_age_s >= flush_after_s)
