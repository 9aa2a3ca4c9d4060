"""What the simulated providers billed, per endpoint, model and UTC day (issue 19).

Owns: `Billing` (the running totals every served, billed request adds to: requests, prompt
and completion totals, cache reads, cache writes, reasoning, and the cost in USD) and
`price_of` (the simulator's price sheet: genai-prices for the model as the endpoint's adapter
names it, at noon UTC of the day; None when it has no price). The usage-report endpoints of
the dialects (`GET .../organization/usage/...`) read these totals, so `llmq reconcile` can be
tested against a provider that really keeps books. Must not: know any wire format (the
dialects render the reports) or do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from workers.providers import REGISTRY

Billed = tuple[int, int, int, int, int]  # prompt, completion, cached, cache_write, reasoning
_COUNTS = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


@dataclass(slots=True)
class DayTotals:
    """One model's billed totals for one UTC day; `cost_usd` None = no price known."""

    requests: int = 0
    prompt_tokens: int = 0  # every input token, cache reads and writes included
    completion_tokens: int = 0  # every output token, reasoning included
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal | None = Decimal(0)

    @property
    def uncached_input(self) -> int:
        return self.prompt_tokens - self.cached_tokens - self.cache_write_tokens


@lru_cache(maxsize=65_536)
def price_of(
    endpoint: str, model: str, day: date, billed: Billed, batch: bool = False
) -> Decimal | None:
    """USD the simulator bills for one call of `model` with usage `billed` on `day` (`batch`:
    through the batch API, at genai-prices' batch price where it has one)."""
    adapter = REGISTRY.get(endpoint)
    ref = adapter.genai_ref(model) if adapter is not None else None
    if ref is None:
        return None
    import genai_prices  # large data module: loaded on the first priced call

    prompt, completion, cached, write, reasoning = billed
    usage = genai_prices.Usage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=write,
        output_tokens=completion,
        output_reasoning_tokens=reasoning,
    )
    when = datetime.combine(day, time(12), tzinfo=UTC)
    try:
        context = {"processing": "batch"} if batch else None
        calc = genai_prices.calc_price(
            usage,
            ref[1],
            provider_id=ref[0],
            genai_request_timestamp=when,
            price_context=context,  # type: ignore[arg-type]
        )
    except (LookupError, ValueError):
        return None
    return Decimal(calc.total_price)


class Billing:
    """Totals per (endpoint, model, UTC day)."""

    def __init__(self) -> None:
        self.days: dict[tuple[str, str, date], DayTotals] = {}

    def clear(self) -> None:
        self.days.clear()

    def add(
        self, endpoint: str, model: str, at: float, billed: Billed, batch: bool = False
    ) -> None:
        """Book one billed call that arrived at unix time `at` (`batch`: a batch API item)."""
        day = datetime.fromtimestamp(at, UTC).date()
        totals = self.days.get((endpoint, model, day))
        if totals is None:
            totals = self.days[(endpoint, model, day)] = DayTotals()
        prompt, completion, cached, write, reasoning = billed
        totals.requests += 1
        totals.prompt_tokens += prompt
        totals.completion_tokens += completion
        totals.cached_tokens += cached
        totals.cache_write_tokens += write
        totals.reasoning_tokens += reasoning
        cost = price_of(endpoint, model, day, billed, batch)
        if cost is None or totals.cost_usd is None:
            totals.cost_usd = None
        else:
            totals.cost_usd += cost

    def for_endpoint(
        self, endpoint: str, start: date, end: date
    ) -> list[tuple[date, str, DayTotals]]:
        """(day, model, totals) of `endpoint` for start <= day < end, by day then model."""
        rows = [
            (day, model, totals)
            for (name, model, day), totals in self.days.items()
            if name == endpoint and start <= day < end
        ]
        return sorted(rows, key=lambda r: (r[0], r[1]))

    def as_json(self) -> list[dict[str, Any]]:
        """Every (endpoint, model, day) total, for `GET /_sim/stats` (cost as a string)."""
        return [
            {
                "provider": endpoint,
                "model": model,
                "day": day.isoformat(),
                **{k: getattr(t, k) for k in _COUNTS},
                "cost_usd": None if t.cost_usd is None else str(t.cost_usd),
            }
            for (endpoint, model, day), t in sorted(self.days.items())
        ]
