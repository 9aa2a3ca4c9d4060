"""The Anthropic Message Batches wire format (issue 18): `POST /v1/messages/batches` with the
requests inline, `GET .../{id}`, JSONL results at `results_url`.

Owns: the pure methods the Messages adapter inherits for its batch lane. A message batch has no
metadata, so llmq's tag is the prefix of every `custom_id` (`<tag>-<item>`, within the API's
64 characters of `[A-Za-z0-9_-]`); a batch created but never recorded is adopted by its
request count among the unrecorded batches, and a result whose custom_id does not carry the
tag is never applied. Wire reference: https://docs.claude.com/en/api/creating-message-batches.
Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from workers.providers.batch import BatchItem, BatchStatus, ItemResult, line_reply
from workers.providers.batch_wire import BatchWireBase, jsonl

PATH = "/v1/messages/batches"
# error.type -> the HTTP status the sync API answers it with (classification is by status)
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatchWire(BatchWireBase):
    batch_max_items = 100_000
    batch_max_bytes = 250_000_000  # 256 MB per batch request

    def batch_create(self, items: Sequence[BatchItem], tag: str, uploaded: Any) -> httpx.Request:
        requests = [
            {"custom_id": i.custom_id, "params": self.build_body(i.request)}  # type: ignore[attr-defined]
            for i in items
        ]
        return self.post(self.base_url + PATH, {"requests": requests})  # type: ignore[attr-defined]

    def parse_batch(self, body: Any) -> BatchStatus:
        counts = body.get("request_counts") or {}
        ended = body.get("processing_status") == "ended"
        raw = "ended"
        if counts.get("expired"):
            raw = "expired"
        elif counts.get("canceled"):
            raw = "canceled"
        return BatchStatus(
            external_id=str(body["id"]),
            phase="ended" if ended else "in_progress",
            raw_status=raw if ended else str(body.get("processing_status")),
            results=body.get("results_url"),
            total=sum(int(v or 0) for v in counts.values()),
        )

    def batch_get(self, external_id: str) -> httpx.Request:
        return self.get_request(f"{self.base_url}{PATH}/{external_id}")  # type: ignore[attr-defined]

    def batch_list(self) -> httpx.Request:
        return self.get_request(f"{self.base_url}{PATH}?limit=100")  # type: ignore[attr-defined]

    def parse_batch_list(self, body: Any) -> list[BatchStatus]:
        return [self.parse_batch(b) for b in body.get("data") or []]

    def pick_tagged(
        self, listed: Sequence[BatchStatus], tag: str, count: int
    ) -> BatchStatus | None:
        """No metadata: the caller passes only batches not yet recorded; the one with our
        request count is ours (its results are checked against the tag when applied)."""
        return next((b for b in listed if b.total == count), None)

    def batch_results(self, status: BatchStatus) -> list[httpx.Request]:
        url = status.results or f"{self.base_url}{PATH}/{status.external_id}/results"  # type: ignore[attr-defined]
        return [self.get_request(url)]  # type: ignore[attr-defined]

    def parse_batch_results(self, status: BatchStatus, bodies: Sequence[str]) -> list[ItemResult]:
        out: list[ItemResult] = []
        for text in bodies:
            for line in jsonl(text):
                cid, result = str(line.get("custom_id")), line.get("result") or {}
                kind = result.get("type")
                if kind == "succeeded":
                    got = line_reply(self, 200, result.get("message"))  # type: ignore[arg-type]
                elif kind == "errored":
                    err = result.get("error") or {}
                    inner = err.get("error") if isinstance(err.get("error"), dict) else err
                    got = line_reply(self, ERROR_STATUS.get(str(inner.get("type")), 500), err)  # type: ignore[arg-type]
                else:  # canceled / expired: never ran, not billed
                    out.append(ItemResult(cid))
                    continue
                out.append(
                    ItemResult(cid, error=got)
                    if isinstance(got, Exception)
                    else ItemResult(cid, got)
                )
        return out

    def batch_cancel(self, external_id: str) -> httpx.Request:
        return self.post(f"{self.base_url}{PATH}/{external_id}/cancel", {})  # type: ignore[attr-defined]
