"""Batch lane prices per deployment (issue 18), resolved once when the runtime is built.

Owns: `genai_batch_price` (what genai-prices says for batch processing of a model) and
`lane_prices` (deployment id -> batch price, for deployments whose adapter has a batch API).
The decision itself (genai-prices' batch price, else the configured discount; never the sync
price by default) is `workers.routing.lanes.batch_price`. Must not: download price data, read
the clock (callers pass `now`), or name a provider (adapters declare `batch_api`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache

from schemas.config import LLMConfig, LLMModelConfig
from workers.pricing import Price, genai_ref
from workers.providers import REGISTRY
from workers.routing.lanes import batch_price

MTOK = 1_000_000


@lru_cache(maxsize=1024)
def _lookup(provider_id: str, model_ref: str, day: date) -> Price | None:
    import genai_prices

    when = datetime.combine(day, time(12), tzinfo=UTC)
    try:
        both = [
            genai_prices.calc_price(
                genai_prices.Usage(input_tokens=i, output_tokens=o),
                model_ref,
                provider_id=provider_id,
                genai_request_timestamp=when,
                price_context={"processing": "batch"},
            ).total_price
            for i, o in ((MTOK, 0), (0, MTOK))
        ]
    except (LookupError, TypeError):  # unknown model, or a genai-prices without batch prices
        return None
    return Price(
        Decimal(both[0]), Decimal(both[1]), source="genai-prices batch",
        version=f"genai-prices {genai_prices.__version__}",
    )  # fmt: skip


def genai_batch_price(deployment: LLMModelConfig, now: datetime) -> Price | None:
    """genai-prices' batch price, or None (a price set in the config has no batch variant)."""
    if deployment.input_cost_per_mtok is not None or deployment.output_cost_per_mtok is not None:
        return None
    ref = genai_ref(deployment.provider, deployment.model_id or deployment.name)
    return _lookup(ref[0], ref[1], now.date()) if ref else None


def has_batch_api(deployment: LLMModelConfig) -> bool:
    adapter = REGISTRY.get(deployment.provider)
    return adapter is not None and adapter.batch_api is not None


def lane_prices(
    config: LLMConfig,
    deployments: Mapping[str, LLMModelConfig],
    prices: Mapping[str, Price | None],
    now: datetime,
) -> dict[str, Price | None]:
    """Deployment id -> batch lane price, for every deployment with a batch API."""
    discount = config.batch_lane.batch_discount
    return {
        dep_id: batch_price(prices.get(dep_id), genai_batch_price(dep, now), discount)
        for dep_id, dep in deployments.items()
        if has_batch_api(dep)
    }
