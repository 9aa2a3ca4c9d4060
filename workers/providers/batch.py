"""Provider batch APIs (issue 18): the provider-neutral values, and the one I/O path.

Owns: `BatchItem` (one request of a provider batch, under llmq's `custom_id`), `BatchStatus`
(a provider batch as its provider reports it, normalised), `ItemResult` (one item's reply or
error), and `BatchClient`, which sends what an adapter's pure batch methods build
(`batch_upload`, `batch_create`, `batch_get`, `batch_list`, `batch_results`, `batch_cancel`)
and hands the replies back to its pure parsers. Must not: know any provider's wire format
(each adapter's batch module does), touch the ledger, or put a key into anything it returns.

A provider batch is tagged with llmq's own id (`tag`): OpenAI metadata, Gemini display name,
Anthropic a custom_id prefix, so a flusher that died between "create" and recording the
provider's id can find the batch again (`find_tagged`) instead of creating it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import httpx

from core.errors import LLMProviderError
from core.secrets_scrub import scrub
from workers.providers.base import ProviderReply, ProviderRequest
from workers.providers.bounded import send_bounded
from workers.providers.http import translate_transport_errors

if TYPE_CHECKING:
    from workers.providers.base import ProviderAdapter

# in_progress: still working; ended: results are final (completed, or cancelled/expired with
# what finished before); failed: the provider refused the batch as a whole (no results).
BatchPhase = Literal["in_progress", "ended", "failed"]
MAX_BATCH_REPLY_BYTES = 512 * 1024 * 1024  # a results file is large by design


@dataclass(frozen=True, slots=True)
class BatchItem:
    custom_id: str
    request: ProviderRequest


@dataclass(frozen=True, slots=True)
class BatchStatus:
    external_id: str
    phase: BatchPhase
    raw_status: str  # the provider's own word (completed, expired, canceled, ...)
    tag: str | None = None  # llmq's id, where the provider keeps it
    results: Any = None  # where the results are: file ids, a URL, or the inline results
    total: int | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One item's outcome: a reply (billed), an error, or neither (cancelled/expired: unbilled)."""

    custom_id: str
    reply: ProviderReply | None = None
    error: LLMProviderError | None = None


@dataclass
class BatchClient:
    """Sends an adapter's batch requests (the adapter builds and parses; nothing else here)."""

    adapter: ProviderAdapter
    timeouts: dict[str, Any] = field(default_factory=dict)

    def _send(self, request: httpx.Request) -> httpx.Response:
        a = self.adapter
        with translate_transport_errors(**a._fields):
            resp = send_bounded(
                a.client, request, MAX_BATCH_REPLY_BYTES, a.target.provider.timeout_s, **a._fields
            )
        if not resp.is_success:
            raise a.classify_error(resp)
        return resp

    def create(self, items: list[BatchItem], tag: str) -> BatchStatus:
        """Upload (where the provider takes a file) and create the batch; not idempotent."""
        a = self.adapter
        upload = a.batch_upload(items, tag)
        uploaded = self._send(upload).json() if upload is not None else None
        return a.parse_batch(self._send(a.batch_create(items, tag, uploaded)).json())

    def get(self, external_id: str) -> BatchStatus:
        return self.adapter.parse_batch(self._send(self.adapter.batch_get(external_id)).json())

    def find_tagged(self, tag: str, count: int, known: set[str]) -> BatchStatus | None:
        """The provider batch llmq created under `tag` (with `count` items) and never recorded
        (`known`: the provider ids the ledger has), if any."""
        listed = self.adapter.parse_batch_list(self._send(self.adapter.batch_list()).json())
        fresh = [b for b in listed if b.external_id not in known]
        return self.adapter.pick_tagged(fresh, tag, count)

    def results(self, status: BatchStatus) -> list[ItemResult]:
        a = self.adapter
        bodies = [self._send(r).text for r in a.batch_results(status)]
        return a.parse_batch_results(status, bodies)

    def cancel(self, external_id: str) -> None:
        self._send(self.adapter.batch_cancel(external_id))


def line_reply(
    adapter: ProviderAdapter, status: int, body: Any
) -> ProviderReply | LLMProviderError:
    """One item's reply body as the sync path reads it: parsed (2xx) or classified (else)."""
    resp = httpx.Response(status, json=body, request=httpx.Request("POST", adapter.base_url))
    if not resp.is_success:
        return adapter.classify_error(resp)
    try:
        reply = adapter.parse_reply(resp)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return adapter.malformed(f"{type(exc).__name__}: {exc}", resp)
    # scrubbed like a sync reply (a hostile provider may echo a key back)
    return replace(
        reply,
        text=scrub(reply.text),
        refusal=scrub(reply.refusal) if reply.refusal else reply.refusal,
        request_id=scrub(reply.request_id)[:200] if reply.request_id else None,
    )
