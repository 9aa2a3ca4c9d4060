"""The pure half every batch-capable adapter shares (issue 18): defaults of the batch methods.

Owns: `BatchWireBase`, the mixin whose methods an adapter's batch module overrides (build the
requests of a provider batch, parse its status, list and results), plus `get_request` and the
tag matching used to adopt a batch created but never recorded. Must not: do I/O
(`workers/providers/batch.py`'s `BatchClient` sends) or name a provider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from workers.providers.batch import BatchItem, BatchStatus, ItemResult

if TYPE_CHECKING:
    from workers.providers.base import ProviderAdapter


class BatchWireBase:
    """Defaults: no upload step, adopt by tag; everything else is the provider's."""

    batch_window_s: ClassVar[float] = 86400.0  # the provider's completion window, seconds
    batch_max_items: ClassVar[int] = 50_000  # requests per provider batch, at most
    batch_max_bytes: ClassVar[int] = 200_000_000  # request bodies per provider batch, at most

    def batch_body_bytes(self, item: BatchItem) -> int:
        """Bytes one item adds to its provider batch (its request body as JSON)."""
        import json

        return len(json.dumps(self.build_body(item.request)).encode())  # type: ignore[attr-defined]

    def get_request(self: ProviderAdapter, url: str, method: str = "GET") -> httpx.Request:  # type: ignore[misc]
        headers = {k: v for k, v in self.headers.items() if k != "content-type"}
        return self.client.build_request(method, url, headers=headers, timeout=self.timeout)

    def batch_upload(self, items: Sequence[BatchItem], tag: str) -> httpx.Request | None:
        return None

    def batch_create(self, items: Sequence[BatchItem], tag: str, uploaded: Any) -> httpx.Request:
        raise NotImplementedError

    def parse_batch(self, body: Any) -> BatchStatus:
        raise NotImplementedError

    def batch_get(self, external_id: str) -> httpx.Request:
        raise NotImplementedError

    def batch_list(self) -> httpx.Request:
        raise NotImplementedError

    def parse_batch_list(self, body: Any) -> list[BatchStatus]:
        raise NotImplementedError

    def batch_results(self, status: BatchStatus) -> list[httpx.Request]:
        raise NotImplementedError

    def parse_batch_results(self, status: BatchStatus, bodies: Sequence[str]) -> list[ItemResult]:
        raise NotImplementedError

    def batch_cancel(self, external_id: str) -> httpx.Request:
        raise NotImplementedError

    def pick_tagged(
        self, listed: Sequence[BatchStatus], tag: str, count: int
    ) -> BatchStatus | None:
        """The listed batch carrying llmq's `tag` (metadata or display name)."""
        return next((b for b in listed if b.tag == tag), None)


def jsonl(text: str) -> list[Any]:
    """The JSON values of a JSONL text (blank lines skipped)."""
    import json

    return [json.loads(line) for line in text.splitlines() if line.strip()]
