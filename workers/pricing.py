"""What a deployment costs: rates for estimates, and the exact cost of a call. Pure; Decimal.

Owns: `Price` (a deployment's rates and where they come from), `price_for(deployment, now)`
(a price in the config wins, else the genai-prices snapshot bundled with the installed
package, else None with one warning per model) and `cost(usage, price, when, batch=...)`, the
cost of one call from its whole usage (issue 19). Lookups are cached per (provider, model,
day), so callers may ask per call.

Two uses, kept apart on purpose:
- estimates (routing's ranking, the quota's worst case) read `input_per_mtok` and
  `output_per_mtok`: for a tiered model these are its HIGHEST tier's rates, so a reservation
  bounds a long-context call too, and no cache discount is assumed (worst case, uncached);
- the booked cost of a call is `cost()`: genai-prices' `calc_price` on the full usage (input
  total, cache reads, cache writes, output, reasoning) at the request's timestamp, so tiers,
  cache rates and batch processing come out as the provider's price sheet says; a config
  price applies its own input, cached-input, cache-write and output rates.

Must not: download price data (genai-prices' auto-update stays off), read the clock (callers
pass `now` / `when`), or name a provider (each adapter says how genai-prices knows it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from schemas.config import LLMModelConfig
from schemas.job import Usage
from workers.providers import REGISTRY

log = logging.getLogger(__name__)

PER_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """A deployment's USD-per-million-token rates, and where they came from.

    `input_per_mtok` / `output_per_mtok`: the rates estimates use (highest tier, uncached).
    `ref`: (genai-prices provider id, model ref) when `source` is genai-prices: `cost()`
    prices the real usage through it. `cached_input_per_mtok` / `cache_write_per_mtok`: a
    config price's cache rates (None = the input rate).
    """

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    source: str  # "config" or "genai-prices"
    version: str  # e.g. "genai-prices 0.2.3" or "config"
    ref: tuple[str, str] | None = None
    cached_input_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None


def genai_ref(provider: str, model_id: str) -> tuple[str, str] | None:
    """(genai-prices provider id, model ref) for a deployment, or None when it has none."""
    adapter = REGISTRY.get(provider)
    return adapter.genai_ref(model_id) if adapter is not None else None


def _highest(value: object) -> Decimal | None:
    """A rate's highest tier (a flat rate is its own): the bound estimates need."""
    base = getattr(value, "base", value)
    if not isinstance(base, Decimal):
        return None
    tiers = [t.price for t in getattr(value, "tiers", ()) if isinstance(t.price, Decimal)]
    return max([base, *tiers])


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


@lru_cache(maxsize=4096)
def _lookup(provider_id: str, model_ref: str, day: date) -> Price | None:
    import genai_prices  # imported on first lookup: its data module is large

    try:
        calc = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1, output_tokens=1),
            model_ref,
            provider_id=provider_id,
            genai_request_timestamp=_noon(day),
        )
    except LookupError:
        return None
    input_price = _highest(getattr(calc.model_price, "input_mtok", None))
    output_price = _highest(getattr(calc.model_price, "output_mtok", None))
    if input_price is None and output_price is None:
        return None
    return Price(
        input_price or Decimal(0),
        output_price or Decimal(0),
        source="genai-prices",
        version=f"genai-prices {genai_prices.__version__}",
        ref=(provider_id, model_ref),
    )


@lru_cache(maxsize=4096)
def _warn_unknown(provider: str, model_id: str) -> None:
    log.warning(
        "no price known for %s model %r: its cost will be recorded as unknown; set "
        "input_cost_per_mtok / output_cost_per_mtok in llm_config.yaml to price it",
        provider,
        model_id,
    )


def _config_price(dep: LLMModelConfig) -> Price | None:
    rates = (dep.input_cost_per_mtok, dep.output_cost_per_mtok)
    if rates == (None, None):
        return None
    return Price(
        dep.input_cost_per_mtok or Decimal(0),
        dep.output_cost_per_mtok or Decimal(0),
        source="config",
        version="config",
        cached_input_per_mtok=dep.cached_input_cost_per_mtok,
        cache_write_per_mtok=dep.cache_write_cost_per_mtok,
    )


def price_for(deployment: LLMModelConfig, now: datetime) -> Price | None:
    """The deployment's price at `now`: config override, else genai-prices, else None."""
    configured = _config_price(deployment)
    if configured is not None:
        return configured
    model_id = deployment.model_id or deployment.name
    ref = genai_ref(deployment.provider, model_id)
    price = _lookup(ref[0], ref[1], now.date()) if ref else None
    if price is None:
        _warn_unknown(str(deployment.provider), model_id)
    return price


def genai_usage(usage: Usage) -> Any:
    """`usage` as genai-prices' `Usage`: input total with its cache reads and writes, output
    total with its reasoning (genai-prices prices each leaf: parent minus children)."""
    import genai_prices

    return genai_prices.Usage(
        input_tokens=usage.prompt_tokens,
        cache_read_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.completion_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )


def _config_cost(usage: Usage, price: Price) -> Decimal:
    cached_rate = price.cached_input_per_mtok
    write_rate = price.cache_write_per_mtok
    uncached = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    total = (
        uncached * price.input_per_mtok
        + usage.cached_tokens * (price.input_per_mtok if cached_rate is None else cached_rate)
        + usage.cache_write_tokens * (price.input_per_mtok if write_rate is None else write_rate)
        + usage.completion_tokens * price.output_per_mtok
    )
    return total / PER_MTOK


def cost(
    usage: Usage, price: Price | None, when: datetime, *, batch: bool = False
) -> Decimal | None:
    """USD for `usage`, a call made at `when`; None when the price is unknown (never a guess).

    Args:
        usage: the call's whole usage; its cache and reasoning counts must sit inside their
            totals (workers/usage_check.py refuses a usage that does not).
        price: the deployment's `price_for`; None = unknown.
        when: the request's timestamp: genai-prices picks the prices (and tiers) in force then.
        batch: the call went through the provider's batch API: genai-prices' batch prices
            where it has them (a model without a batch variant keeps its standard rates; a
            config price has no batch rate here: the batch lane applies its own discount).
    """
    if price is None:
        return None
    if price.ref is None:
        return _config_cost(usage, price)
    import genai_prices

    context = {"processing": "batch"} if batch else None
    try:
        calc = genai_prices.calc_price(
            genai_usage(usage),
            price.ref[1],
            provider_id=price.ref[0],
            genai_request_timestamp=when,
            price_context=context,  # type: ignore[arg-type]
        )
    except (LookupError, ValueError):
        # No price at `when`, or classes outside their totals (usage_check keeps those from
        # reaching here): unknown, so the quota books the reservation instead.
        return None
    return Decimal(calc.total_price)
