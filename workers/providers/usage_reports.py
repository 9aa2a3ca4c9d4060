"""Reading a provider's own usage and cost reports, for `llmq reconcile` (issue 19).

Owns: `ReportRow` (one model's tokens and cost on one UTC day, in llmq's terms: prompt and
completion totals with cache reads and writes inside the prompt) and the two report shapes
providers publish behind an admin key, each a small class an adapter names as its
`usage_report`:

- `BucketedUsageReport`: `GET {base}/organization/usage/completions` (input tokens including
  cached ones, `input_cached_tokens`, output tokens, per model and 1-day bucket) and
  `GET {base}/organization/costs` (amounts per line item "<model>, <kind>", USD as a number);
- `MessagesUsageReport`: `GET {base}/v1/organizations/usage_report/messages` (uncached input,
  cache reads, cache creation by TTL, output, per model and 1-day bucket) and
  `GET {base}/v1/organizations/cost_report` (amounts in cents as decimal strings, per model).

Both follow `has_more` / `next_page`. Must not: name a provider (adapters choose a shape),
write anything, or put a key anywhere but the request header. Replies are untrusted: a field
that is missing or not a count raises `ValueError` naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar

import httpx

MAX_PAGES = 100  # a provider that keeps saying has_more is not followed forever


@dataclass(slots=True)
class ReportRow:
    """Tokens and cost of one model on one UTC day (`cost_usd` None = the source has none)."""

    model: str
    day: date
    prompt_tokens: int = 0  # every input token, cache reads and writes included
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal | None = None


def _count(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: {key} is not a token count: {value!r}")
    return value


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


class _Report:
    """Paging and row bookkeeping shared by both shapes."""

    usage_path: ClassVar[str]
    cost_path: ClassVar[str]

    def key_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def window(self, since: date, until: date) -> dict[str, Any]:
        raise NotImplementedError

    def _pages(
        self, client: httpx.Client, url: str, params: dict[str, Any], headers: dict[str, str]
    ) -> Iterator[dict[str, Any]]:
        page: str | None = None
        for _ in range(MAX_PAGES):
            query = {**params, **({"page": page} if page else {})}
            resp = client.get(url, params=query, headers=headers)
            resp.raise_for_status()
            body = resp.json()
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise ValueError(f"{url}: reply has no data list")
            yield body
            page = body.get("next_page")
            if not body.get("has_more") or not page:
                return
        raise ValueError(f"{url}: more than {MAX_PAGES} pages")

    def fetch(
        self, client: httpx.Client, base_url: str, headers: dict[str, str], since: date, until: date
    ) -> list[ReportRow]:
        """Rows per (model, day) for since <= day < until, tokens and cost merged."""
        rows: dict[tuple[str, date], ReportRow] = {}

        def row(model: str, day: date) -> ReportRow:
            found = rows.get((model, day))
            if found is None:
                found = rows[(model, day)] = ReportRow(model, day)
            return found

        params = self.window(since, until)
        for body in self._pages(client, base_url + self.usage_path, params, headers):
            for day, result in self._buckets(body):
                self.add_usage(row(self.model_of(result), day), result)
        for body in self._pages(
            client, base_url + self.cost_path, self.cost_params(params), headers
        ):
            for day, result in self._buckets(body):
                model, usd = self.cost_of(result)
                if model is not None:
                    target = row(model, day)
                    target.cost_usd = (target.cost_usd or Decimal(0)) + usd
        return sorted(rows.values(), key=lambda r: (r.day, r.model))

    def _buckets(self, body: dict[str, Any]) -> Iterator[tuple[date, dict[str, Any]]]:
        for bucket in body["data"]:
            day = self.bucket_day(bucket)
            for result in bucket.get("results") or ():
                if isinstance(result, dict):
                    yield day, result

    def model_of(self, result: dict[str, Any]) -> str:
        model = result.get("model")
        if not isinstance(model, str):
            raise ValueError(f"usage result without a model (group by model): {result!r:.200}")
        return model

    def bucket_day(self, bucket: dict[str, Any]) -> date:
        raise NotImplementedError

    def cost_params(self, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def add_usage(self, row: ReportRow, result: dict[str, Any]) -> None:
        raise NotImplementedError

    def cost_of(self, result: dict[str, Any]) -> tuple[str | None, Decimal]:
        raise NotImplementedError


class BucketedUsageReport(_Report):
    """Organization usage/costs API with unix-second buckets (see the module docstring)."""

    usage_path = "/organization/usage/completions"
    cost_path = "/organization/costs"

    def window(self, since: date, until: date) -> dict[str, Any]:
        days = (until - since).days
        return {
            "start_time": int(_midnight(since).timestamp()),
            "end_time": int(_midnight(until).timestamp()),
            "bucket_width": "1d",
            "group_by": "model",
            "limit": max(min(days, 31), 1),
        }

    def cost_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "group_by": "line_item"}

    def bucket_day(self, bucket: dict[str, Any]) -> date:
        start = bucket.get("start_time")
        if not isinstance(start, int):
            raise ValueError(f"bucket without start_time: {bucket!r:.200}")
        return datetime.fromtimestamp(start, UTC).date()

    def add_usage(self, row: ReportRow, result: dict[str, Any]) -> None:
        where = f"usage {row.model} {row.day}"
        row.prompt_tokens += _count(result, "input_tokens", where)  # cached ones included
        row.cached_tokens += _count(result, "input_cached_tokens", where)
        row.completion_tokens += _count(result, "output_tokens", where)

    def cost_of(self, result: dict[str, Any]) -> tuple[str | None, Decimal]:
        item = result.get("line_item")
        amount = result.get("amount") or {}
        value = amount.get("value") if isinstance(amount, dict) else None
        if not isinstance(item, str) or not isinstance(value, int | float | str):
            raise ValueError(f"cost result without line_item or amount: {result!r:.200}")
        model = item.rsplit(", ", 1)[0]  # "<model>, input" / ", cached input" / ", output"
        return model, Decimal(str(value))


class MessagesUsageReport(_Report):
    """Messages usage report and cost report with RFC 3339 buckets (see the module docstring)."""

    usage_path = "/v1/organizations/usage_report/messages"
    cost_path = "/v1/organizations/cost_report"

    def __init__(self, version_header: dict[str, str]) -> None:
        self.version_header = version_header

    def key_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, **self.version_header}

    def window(self, since: date, until: date) -> dict[str, Any]:
        return {
            "starting_at": _midnight(since).isoformat().replace("+00:00", "Z"),
            "ending_at": _midnight(until).isoformat().replace("+00:00", "Z"),
            "bucket_width": "1d",
            "group_by[]": "model",
            "limit": max(min((until - since).days, 31), 1),
        }

    def cost_params(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "group_by[]": "description"}

    def bucket_day(self, bucket: dict[str, Any]) -> date:
        start = bucket.get("starting_at")
        if not isinstance(start, str):
            raise ValueError(f"bucket without starting_at: {bucket!r:.200}")
        return datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC).date()

    def add_usage(self, row: ReportRow, result: dict[str, Any]) -> None:
        where = f"usage {row.model} {row.day}"
        creation = result.get("cache_creation") or {}
        writes = _count(creation, "ephemeral_5m_input_tokens", where) + _count(
            creation, "ephemeral_1h_input_tokens", where
        )
        reads = _count(result, "cache_read_input_tokens", where)
        # uncached input excludes cache reads and writes: the prompt is all three
        row.prompt_tokens += _count(result, "uncached_input_tokens", where) + reads + writes
        row.cached_tokens += reads
        row.cache_write_tokens += writes
        row.completion_tokens += _count(result, "output_tokens", where)

    def cost_of(self, result: dict[str, Any]) -> tuple[str | None, Decimal]:
        amount = result.get("amount")
        if not isinstance(amount, str | int | float):
            raise ValueError(f"cost result without amount: {result!r:.200}")
        model = result.get("model")
        # amounts are in cents (lowest currency units) as decimal strings
        return (model if isinstance(model, str) else None), Decimal(str(amount)) / 100
