"""Prices: config overrides, genai-prices lookups, unknown models, exact Decimal cost."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest

from schemas import LLMModelConfig, LLMProvider, Usage
from workers.pricing import Price, cost, genai_ref, price_for

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def dep(provider: str, model_id: str, **kw) -> LLMModelConfig:
    return LLMModelConfig(name="m", provider=provider, model_id=model_id, **kw)


@pytest.mark.parametrize(
    ("provider", "model_id", "provider_id", "ref"),
    [
        ("openai", "gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("anthropic", "claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
        ("google", "gemini-2.5-flash", "google", "gemini-2.5-flash"),
        ("cohere", "command-r-08-2024", "cohere", "command-r-08-2024"),
        ("huggingface", "meta-llama/Llama-3.1-8B-Instruct:novita", "huggingface_novita",
         "meta-llama/Llama-3.1-8B-Instruct"),
    ],
)  # fmt: skip
def test_genai_prices_agree_with_the_package(provider, model_id, provider_id, ref):
    price = price_for(dep(provider, model_id), NOW)
    assert price is not None and price.source == "genai-prices"
    assert price.version == f"genai-prices {genai_prices.__version__}"
    usage = Usage(prompt_tokens=12_345, completion_tokens=678)
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=12_345, output_tokens=678),
        ref,
        provider_id=provider_id,
        genai_request_timestamp=NOW,
    ).total_price
    assert cost(usage, price) == expected


def test_config_price_wins():
    price = price_for(
        dep("openai", "gpt-4o-mini", input_cost_per_mtok="0.5", output_cost_per_mtok="1.25"), NOW
    )
    assert price == Price(Decimal("0.5"), Decimal("1.25"), "config", "config")


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


@pytest.mark.parametrize(
    ("provider", "model_id"),
    [("local", "llama3"), ("huggingface", "meta-llama/Llama-3.1-8B-Instruct")],
)
def test_no_genai_reference_for_local_and_auto_router(provider, model_id):
    assert genai_ref(LLMProvider(provider), model_id) is None
    assert price_for(dep(provider, model_id), NOW) is None


def test_tiered_model_priced_at_base_tier():
    price = price_for(dep("anthropic", "claude-sonnet-4-5"), NOW)
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal(3), Decimal(15))


def test_cost_is_exact_decimal():
    price = Price(Decimal("0.15"), Decimal("0.6"), "config", "config")
    assert cost(Usage(prompt_tokens=1000, completion_tokens=500), price) == Decimal("0.00045")
    assert cost(Usage(prompt_tokens=1, completion_tokens=0), price) == Decimal("1.5E-7")
    assert cost(Usage(), price) == 0
    assert cost(Usage(prompt_tokens=10), None) is None
