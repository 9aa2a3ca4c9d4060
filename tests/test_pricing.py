"""Prices: config overrides, genai-prices lookups, unknown models, and the exact cost of a call
from its whole usage (issue 19: cache reads and writes, reasoning, tiers, batch)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

import workers.pricing as pricing
from schemas import LLMModelConfig, LLMProvider, Usage
from workers.pricing import Price, cost, genai_ref, price_for

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def dep(provider: str, model_id: str, **kw) -> LLMModelConfig:
    return LLMModelConfig(name="m", provider=provider, model_id=model_id, **kw)


def gp(usage: Usage, ref: str, provider_id: str, at: datetime = NOW, **kw) -> Decimal:
    """What genai-prices itself says for `usage` (the provider's price sheet)."""
    return genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.completion_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        ),
        ref,
        provider_id=provider_id,
        genai_request_timestamp=at,
        **kw,
    ).total_price


DEPLOYMENTS = [
    ("openai", "gpt-4o-mini", "openai", "gpt-4o-mini"),
    ("openai", "gpt-5", "openai", "gpt-5"),
    ("anthropic", "claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
    ("google", "gemini-2.5-flash", "google", "gemini-2.5-flash"),
    ("google", "gemini-2.5-pro", "google", "gemini-2.5-pro"),
    ("cohere", "command-r-08-2024", "cohere", "command-r-08-2024"),
    ("huggingface", "meta-llama/Llama-3.1-8B-Instruct:novita", "huggingface_novita",
     "meta-llama/Llama-3.1-8B-Instruct"),
]  # fmt: skip

USAGES = [
    Usage(prompt_tokens=12_345, completion_tokens=678),
    Usage(prompt_tokens=12_345, completion_tokens=678, cached_tokens=10_000),
    Usage(prompt_tokens=12_345, completion_tokens=678, cache_write_tokens=4_000),
    Usage(prompt_tokens=12_345, completion_tokens=2_678, reasoning_tokens=2_000),
    Usage(prompt_tokens=250_000, completion_tokens=1_000, cached_tokens=100_000),  # long context
]


@pytest.mark.parametrize(("provider", "model_id", "provider_id", "ref"), DEPLOYMENTS)
@pytest.mark.parametrize("usage", USAGES, ids=["plain", "cached", "write", "reasoning", "long"])
def test_cost_is_genai_prices_on_the_whole_usage(provider, model_id, provider_id, ref, usage):
    price = price_for(dep(provider, model_id), NOW)
    assert price is not None and price.source == "genai-prices"
    assert price.version == f"genai-prices {genai_prices.__version__}"
    assert cost(usage, price, NOW) == gp(usage, ref, provider_id)


def test_cache_hits_are_not_billed_at_the_input_rate():
    """The complaint of issue 19: a cached prompt priced as uncached overstates its cost."""
    price = price_for(dep("anthropic", "claude-sonnet-4-5"), NOW)
    plain = Usage(prompt_tokens=100_000, completion_tokens=100)
    cached = Usage(prompt_tokens=100_000, completion_tokens=100, cached_tokens=90_000)
    assert cost(cached, price, NOW) < cost(plain, price, NOW) / 3
    write = Usage(prompt_tokens=100_000, completion_tokens=100, cache_write_tokens=100_000)
    assert cost(write, price, NOW) > cost(plain, price, NOW)  # writes cost 1.25x


def test_long_context_tier_is_applied():
    price = price_for(dep("anthropic", "claude-sonnet-4-5"), NOW)
    short = cost(Usage(prompt_tokens=100_000), price, NOW)
    long = cost(Usage(prompt_tokens=300_000), price, NOW)
    assert short == Decimal("0.3") and long == Decimal("1.8")  # $3 vs $6 per MTok above 200k


def test_estimates_use_the_highest_tier_so_reservations_bound_long_calls():
    price = price_for(dep("anthropic", "claude-sonnet-4-5"), NOW)
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal(6), Decimal("22.5"))
    usage = Usage(prompt_tokens=300_000, completion_tokens=1_000)
    flat_bound = (300_000 * price.input_per_mtok + 1_000 * price.output_per_mtok) / 1_000_000
    assert cost(usage, price, NOW) <= flat_bound


@pytest.mark.parametrize(
    ("provider", "model_id", "provider_id", "ref"),
    [("openai", "gpt-4o", "openai", "gpt-4o"),
     ("anthropic", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
     ("google", "gemini-2.5-flash", "google", "gemini-2.5-flash")],
)  # fmt: skip
def test_batch_asks_genai_prices_for_batch_processing(provider, model_id, provider_id, ref):
    at = datetime(2026, 11, 15, tzinfo=UTC)  # genai-prices 0.2.3 has batch prices from autumn
    price = price_for(dep(provider, model_id), at)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=400_000)
    batch = cost(usage, price, at, batch=True)
    assert batch == gp(usage, ref, provider_id, at, price_context={"processing": "batch"})
    assert batch < cost(usage, price, at)


def test_config_price_wins_with_cache_rates():
    price = price_for(
        dep(
            "openai",
            "gpt-4o-mini",
            input_cost_per_mtok="0.5",
            output_cost_per_mtok="1.25",
            cached_input_cost_per_mtok="0.05",
            cache_write_cost_per_mtok="0.625",
        ),
        NOW,
    )
    assert price == Price(
        Decimal("0.5"), Decimal("1.25"), "config", "config", None, Decimal("0.05"),
        Decimal("0.625"),
    )  # fmt: skip
    usage = Usage(
        prompt_tokens=1_000_000,
        cached_tokens=500_000,
        cache_write_tokens=100_000,
        completion_tokens=10_000,
        reasoning_tokens=5_000,
    )
    # 400k uncached x 0.5 + 500k x 0.05 + 100k x 0.625 + 10k x 1.25 (reasoning is output)
    assert cost(usage, price, NOW) == Decimal("0.2") + Decimal("0.025") + Decimal(
        "0.0625"
    ) + Decimal("0.0125")


def test_config_without_cache_rates_bills_cache_at_the_input_rate():
    price = price_for(dep("local", "x", input_cost_per_mtok=2, output_cost_per_mtok=4), NOW)
    usage = Usage(prompt_tokens=1_000, cached_tokens=600, cache_write_tokens=400)
    assert cost(usage, price, NOW) == Decimal("0.002")


def test_half_configured_price_counts_the_other_side_as_free():
    price = price_for(dep("local", "x", input_cost_per_mtok=2), NOW)
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal(2), Decimal(0))


def test_unknown_price_is_none_with_one_warning(caplog):
    caplog.set_level(logging.WARNING)
    model = f"no-such-model-{uuid.uuid4().hex[:6]}"
    assert price_for(dep("openai", model), NOW) is None
    assert price_for(dep("openai", model), NOW) is None
    warnings = [r for r in caplog.records if model in r.getMessage()]
    assert len(warnings) == 1 and "input_cost_per_mtok" in warnings[0].getMessage()
    assert cost(Usage(prompt_tokens=10), None, NOW) is None  # unknown, never $0


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [("local", "llama3"), ("huggingface", "meta-llama/Llama-3.1-8B-Instruct")],
)
def test_no_genai_reference_for_local_and_auto_router(provider, model_id):
    assert genai_ref(LLMProvider(provider), model_id) is None
    assert price_for(dep(provider, model_id), NOW) is None


def test_inconsistent_usage_is_unknown_not_a_crash():
    price = price_for(dep("openai", "gpt-4o-mini"), NOW)
    assert cost(Usage(prompt_tokens=10, cached_tokens=20), price, NOW) is None


def test_cost_is_exact_decimal():
    price = Price(Decimal("0.15"), Decimal("0.6"), "config", "config")
    assert cost(Usage(prompt_tokens=1000, completion_tokens=500), price, NOW) == Decimal("0.00045")
    assert cost(Usage(prompt_tokens=1, completion_tokens=0), price, NOW) == Decimal("1.5E-7")
    assert cost(Usage(), price, NOW) == 0


def test_the_flat_rate_path_is_gone():
    """A genai-priced deployment's cost never comes from per-token rates times counts."""
    price = price_for(dep("openai", "gpt-4o-mini"), NOW)
    assert price.ref == ("openai", "gpt-4o-mini")
    assert not hasattr(pricing, "_per_mtok")
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=1_000_000)
    flat = price.input_per_mtok
    assert cost(usage, price, NOW) == flat / 2  # gpt-4o-mini: cached input at 50 %
