"""What a deployment costs per token, and what a call cost. Pure; money is Decimal.

Owns: `Price`, `price_for(deployment, now)` (a price in the config wins, else the genai-prices
snapshot bundled with the installed package, else None with one warning per model) and
`cost(usage, price)`. Lookups are cached per (provider, model, day), so callers may ask per
call; the runtime and the manager still resolve prices once per deployment.
Must not: download price data (genai-prices' auto-update stays off), read the clock (callers
pass `now`), or name a provider (each adapter says how genai-prices knows it: `genai_ref`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache

from schemas.config import LLMModelConfig
from schemas.job import Usage
from workers.providers import REGISTRY

log = logging.getLogger(__name__)

PER_MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens, and where the numbers came from (stored with each usage row)."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    source: str  # "config" or "genai-prices"
    version: str  # e.g. "genai-prices 0.2.3" or "config"


def genai_ref(provider: str, model_id: str) -> tuple[str, str] | None:
    """(genai-prices provider id, model ref) for a deployment, or None when it has none."""
    adapter = REGISTRY.get(provider)
    return adapter.genai_ref(model_id) if adapter is not None else None


def _per_mtok(value: object) -> Decimal | None:
    # Tiered prices (e.g. above 200k input tokens) are priced at their base tier: llmq's
    # reservations bound the prompt well below such tiers for ordinary jobs.
    base = getattr(value, "base", value)
    return base if isinstance(base, Decimal) else None


@lru_cache(maxsize=4096)
def _lookup(provider_id: str, model_ref: str, day: date) -> Price | None:
    import genai_prices  # imported on first lookup: its data module is large

    when = datetime.combine(day, time(12), tzinfo=UTC)
    try:
        calc = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1, output_tokens=1),
            model_ref,
            provider_id=provider_id,
            genai_request_timestamp=when,
        )
    except LookupError:
        return None
    input_price = _per_mtok(getattr(calc.model_price, "input_mtok", None))
    output_price = _per_mtok(getattr(calc.model_price, "output_mtok", None))
    if input_price is None and output_price is None:
        return None
    return Price(
        input_price or Decimal(0),
        output_price or Decimal(0),
        source="genai-prices",
        version=f"genai-prices {genai_prices.__version__}",
    )


@lru_cache(maxsize=4096)
def _warn_unknown(provider: str, model_id: str) -> None:
    log.warning(
        "no price known for %s model %r: its cost will be recorded as unknown; set "
        "input_cost_per_mtok / output_cost_per_mtok in llm_config.yaml to price it",
        provider,
        model_id,
    )


def price_for(deployment: LLMModelConfig, now: datetime) -> Price | None:
    """The deployment's price at `now`: config override, else genai-prices, else None."""
    if deployment.input_cost_per_mtok is not None or deployment.output_cost_per_mtok is not None:
        return Price(
            deployment.input_cost_per_mtok or Decimal(0),
            deployment.output_cost_per_mtok or Decimal(0),
            source="config",
            version="config",
        )
    model_id = deployment.model_id or deployment.name
    ref = genai_ref(deployment.provider, model_id)
    price = _lookup(ref[0], ref[1], now.date()) if ref else None
    if price is None:
        _warn_unknown(str(deployment.provider), model_id)
    return price


def cost(usage: Usage, price: Price | None) -> Decimal | None:
    """USD for `usage` at `price`; None when the price is unknown (never a guess)."""
    if price is None:
        return None
    return (
        usage.prompt_tokens * price.input_per_mtok + usage.completion_tokens * price.output_per_mtok
    ) / PER_MTOK
