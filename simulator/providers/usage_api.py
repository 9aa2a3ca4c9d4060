"""The providers' usage and cost report endpoints, served from the simulator's own billing
(issue 19: `llmq reconcile` reads them).

Owns: the two report shapes as the simulator renders them from `simulator.billing` totals,
one UTC-day bucket per day with billed calls, every result in one page (`has_more: false`):

- OpenAI's organization API: `GET /v1/organization/usage/completions` (results per model:
  `input_tokens` with cached ones included, `input_cached_tokens`, `output_tokens`,
  `num_model_requests`) and `GET /v1/organization/costs` (`amount: {value, currency}` per
  `line_item`). The real API splits a model's cost into "<model>, input" / "cached input" /
  "output" items; the simulator books one "<model>, tokens" item per model and day.
- Anthropic's Admin API: `GET /v1/organizations/usage_report/messages` (per model:
  `uncached_input_tokens`, `cache_read_input_tokens`, `cache_creation.ephemeral_{5m,1h}_
  input_tokens`, `output_tokens`) and `GET /v1/organizations/cost_report` (per model:
  `amount` in cents as a decimal string, `currency: "USD"`).

Must not: bill anything (the engine does) or change the simulator's state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from simulator.billing import DayTotals
from simulator.providers.base import SimError

Rows = list[tuple[date, str, DayTotals]]
FAR_END = date(9999, 1, 1)


def _bad(message: str) -> SimError:
    return SimError(400, "invalid", message)


def _by_day(rows: Rows) -> dict[date, list[tuple[str, DayTotals]]]:
    days: dict[date, list[tuple[str, DayTotals]]] = {}
    for day, model, totals in rows:
        days.setdefault(day, []).append((model, totals))
    return days


def _unix(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def _rfc3339(day: date) -> str:
    return datetime.combine(day, time(0), tzinfo=UTC).isoformat().replace("+00:00", "Z")


# ---- OpenAI organization usage / costs ----------------------------------------------------


def unix_window(query: Mapping[str, str]) -> tuple[date, date]:
    """(first day, day after the last) from `start_time` (required) / `end_time` (unix s)."""
    try:
        start = datetime.fromtimestamp(int(query["start_time"]), UTC).date()
        end = query.get("end_time")
        stop = datetime.fromtimestamp(int(end), UTC).date() if end else FAR_END
    except KeyError:
        raise _bad("start_time: Field required") from None
    except ValueError:
        raise _bad("start_time / end_time: must be unix seconds") from None
    return start, stop


def _page(buckets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "page", "data": buckets, "has_more": False, "next_page": None}


def completions_usage(rows: Rows) -> dict[str, Any]:
    buckets = []
    for day, models in sorted(_by_day(rows).items()):
        results = [
            {
                "object": "organization.usage.completions.result",
                "input_tokens": t.prompt_tokens,
                "output_tokens": t.completion_tokens,
                "input_cached_tokens": t.cached_tokens,
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": t.requests,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": model,
                "batch": None,
            }
            for model, t in models
        ]
        start = _unix(day)
        buckets.append(
            {
                "object": "bucket",
                "start_time": start,
                "end_time": start + 86_400,
                "results": results,
            }
        )
    return _page(buckets)


def costs(rows: Rows) -> dict[str, Any]:
    buckets = []
    for day, models in sorted(_by_day(rows).items()):
        results = [
            {
                "object": "organization.costs.result",
                "amount": {"value": float(t.cost_usd), "currency": "usd"},
                "line_item": f"{model}, tokens",
                "project_id": None,
            }
            for model, t in models
            if t.cost_usd is not None
        ]
        start = _unix(day)
        buckets.append(
            {
                "object": "bucket",
                "start_time": start,
                "end_time": start + 86_400,
                "results": results,
            }
        )
    return _page(buckets)


# ---- Anthropic Admin API usage / cost reports ---------------------------------------------


def rfc3339_window(query: Mapping[str, str]) -> tuple[date, date]:
    """(first day, day after the last) from `starting_at` (required) / `ending_at`."""
    try:
        start = _day(query["starting_at"])
        end = query.get("ending_at")
        stop = _day(end) if end else FAR_END
    except KeyError:
        raise _bad("starting_at: Field required") from None
    except ValueError:
        raise _bad("starting_at / ending_at: must be RFC 3339 timestamps") from None
    return start, stop


def _day(value: str) -> date:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()


def _report(buckets: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": buckets, "has_more": False, "next_page": None}


def messages_usage(rows: Rows) -> dict[str, Any]:
    buckets = []
    for day, models in sorted(_by_day(rows).items()):
        results = [
            {
                "uncached_input_tokens": t.uncached_input,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": t.cache_write_tokens,
                },
                "cache_read_input_tokens": t.cached_tokens,
                "output_tokens": t.completion_tokens,
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": None,
                "workspace_id": None,
                "model": model,
                "service_tier": "standard",
                "context_window": "0-200k",
            }
            for model, t in models
        ]
        end = day + timedelta(days=1)
        buckets.append(
            {"starting_at": _rfc3339(day), "ending_at": _rfc3339(end), "results": results}
        )
    return _report(buckets)


def cost_report(rows: Rows) -> dict[str, Any]:
    buckets = []
    for day, models in sorted(_by_day(rows).items()):
        results = [
            {
                "currency": "USD",
                "amount": str(t.cost_usd * Decimal(100)),  # cents, as a decimal string
                "workspace_id": None,
                "description": f"{model} Usage - Input and Output Tokens",
                "cost_type": "tokens",
                "context_window": "0-200k",
                "model": model,
                "service_tier": "standard",
                "token_type": None,
            }
            for model, t in models
            if t.cost_usd is not None
        ]
        end = day + timedelta(days=1)
        buckets.append(
            {"starting_at": _rfc3339(day), "ending_at": _rfc3339(end), "results": results}
        )
    return _report(buckets)
