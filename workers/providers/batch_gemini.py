"""The Gemini Batch API wire format (issue 18): `POST models/{m}:batchGenerateContent` with the
requests inline, the `batches/{id}` operation polled with `GET`, inline responses.

Owns: the pure methods the Gemini adapter inherits for its batch lane. llmq's tag is the
batch's `display_name`. Both `BATCH_STATE_*` (REST) and `JOB_STATE_*` (SDK) are accepted.
Wire reference: https://ai.google.dev/gemini-api/docs/batch-api. Must not: do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from workers.providers.batch import BatchItem, BatchStatus, ItemResult, line_reply
from workers.providers.batch_wire import BatchWireBase

_ENDED = {"SUCCEEDED", "CANCELLED", "EXPIRED"}


def _state(meta: dict[str, Any]) -> str:
    raw = str(meta.get("state") or "")
    return raw.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")


class GeminiBatchWire(BatchWireBase):
    batch_max_bytes = 19_000_000  # inline requests: under 20 MB per batch

    def batch_create(self, items: Sequence[BatchItem], tag: str, uploaded: Any) -> httpx.Request:
        model = items[0].request.model_id.removeprefix("models/")
        requests = [
            {"request": self.build_body(i.request), "metadata": {"key": i.custom_id}}  # type: ignore[attr-defined]
            for i in items
        ]
        body = {
            "batch": {"display_name": tag, "input_config": {"requests": {"requests": requests}}}
        }
        url = f"{self.base_url}/v1beta/models/{quote(model, safe='-._~')}:batchGenerateContent"  # type: ignore[attr-defined]
        return self.post(url, body)  # type: ignore[attr-defined]

    def parse_batch(self, body: Any) -> BatchStatus:
        meta = body.get("metadata") or {}
        state = _state(meta)
        phase = "failed" if state == "FAILED" else "ended" if state in _ENDED else "in_progress"
        inlined = ((body.get("response") or {}).get("inlinedResponses") or {}).get(
            "inlinedResponses"
        )
        stats = meta.get("batchStats") or {}
        return BatchStatus(
            external_id=str(body["name"]),
            phase=phase,  # type: ignore[arg-type]
            raw_status=state.lower(),
            tag=meta.get("displayName"),
            results=inlined or [],
            total=int(stats["requestCount"]) if "requestCount" in stats else None,
        )

    def batch_get(self, external_id: str) -> httpx.Request:
        return self.get_request(f"{self.base_url}/v1beta/{external_id}")  # type: ignore[attr-defined]

    def batch_list(self) -> httpx.Request:
        return self.get_request(f"{self.base_url}/v1beta/batches")  # type: ignore[attr-defined]

    def parse_batch_list(self, body: Any) -> list[BatchStatus]:
        return [self.parse_batch(b) for b in body.get("operations") or body.get("batches") or []]

    def batch_results(self, status: BatchStatus) -> list[httpx.Request]:
        return []  # inline: the results came with the status

    def parse_batch_results(self, status: BatchStatus, bodies: Sequence[str]) -> list[ItemResult]:
        out: list[ItemResult] = []
        for entry in status.results or []:
            cid = str((entry.get("metadata") or {}).get("key"))
            if "response" in entry:
                got = line_reply(self, 200, entry["response"])  # type: ignore[arg-type]
            else:
                err = entry.get("error") or {}
                got = line_reply(self, int(err.get("code") or 500), {"error": err})  # type: ignore[arg-type]
            out.append(
                ItemResult(cid, error=got) if isinstance(got, Exception) else ItemResult(cid, got)
            )
        return out

    def batch_cancel(self, external_id: str) -> httpx.Request:
        return self.post(f"{self.base_url}/v1beta/{external_id}:cancel", {})  # type: ignore[attr-defined]
