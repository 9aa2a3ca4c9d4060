"""The OpenAI Batch API wire format (issue 18): `POST /files` (purpose batch) with one JSONL
line per request, `POST /batches`, `GET /batches/{id}`, the output and error files.

Owns: the pure methods the chat-completions adapter inherits for its batch lane. The batch is
tagged with llmq's id in `metadata.llmq_batch`. Wire reference:
https://platform.openai.com/docs/api-reference/batch. Must not: do I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from core.errors import ProviderUnavailable
from workers.providers.batch import BatchItem, BatchStatus, ItemResult, line_reply
from workers.providers.batch_wire import BatchWireBase, jsonl

ENDPOINT = "/v1/chat/completions"
TAG_KEY = "llmq_batch"
_PHASES = {"completed": "ended", "expired": "ended", "cancelled": "ended", "failed": "failed"}
UNFINISHED = {"batch_expired", "batch_cancelled"}  # lines of items the batch never ran


class OpenAIBatchWire(BatchWireBase):
    def batch_upload(self, items: Sequence[BatchItem], tag: str) -> httpx.Request | None:
        lines = []
        for item in items:
            self.require(item.request)  # type: ignore[attr-defined]
            body = self.build_body(item.request)  # type: ignore[attr-defined]
            lines.append(
                {"custom_id": item.custom_id, "method": "POST", "url": ENDPOINT, "body": body}
            )
        data = "\n".join(json.dumps(x) for x in lines).encode()
        headers = {k: v for k, v in self.headers.items() if k != "content-type"}  # type: ignore[attr-defined]
        return self.client.build_request(  # type: ignore[attr-defined]
            "POST",
            self.base_url + "/files",  # type: ignore[attr-defined]
            files={"file": (f"{tag}.jsonl", data, "application/jsonl")},
            data={"purpose": "batch"},
            headers=headers,
            timeout=self.timeout,  # type: ignore[attr-defined]
        )

    def batch_create(self, items: Sequence[BatchItem], tag: str, uploaded: Any) -> httpx.Request:
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": ENDPOINT,
            "completion_window": "24h",
            "metadata": {TAG_KEY: tag},
        }
        return self.post(self.base_url + "/batches", body)  # type: ignore[attr-defined]

    def parse_batch(self, body: Any) -> BatchStatus:
        status = str(body["status"])
        counts = body.get("request_counts") or {}
        return BatchStatus(
            external_id=str(body["id"]),
            phase=_PHASES.get(status, "in_progress"),  # type: ignore[arg-type]
            raw_status=status,
            tag=(body.get("metadata") or {}).get(TAG_KEY),
            results=(body.get("output_file_id"), body.get("error_file_id")),
            total=counts.get("total"),
        )

    def batch_get(self, external_id: str) -> httpx.Request:
        return self.get_request(f"{self.base_url}/batches/{external_id}")  # type: ignore[attr-defined]

    def batch_list(self) -> httpx.Request:
        return self.get_request(self.base_url + "/batches?limit=100")  # type: ignore[attr-defined]

    def parse_batch_list(self, body: Any) -> list[BatchStatus]:
        return [self.parse_batch(b) for b in body.get("data") or []]

    def batch_results(self, status: BatchStatus) -> list[httpx.Request]:
        files = [f for f in (status.results or ()) if f]
        return [self.get_request(f"{self.base_url}/files/{f}/content") for f in files]  # type: ignore[attr-defined]

    def parse_batch_results(self, status: BatchStatus, bodies: Sequence[str]) -> list[ItemResult]:
        out: list[ItemResult] = []
        for text in bodies:
            for line in jsonl(text):
                out.append(self._line(line))
        return out

    def _line(self, line: dict[str, Any]) -> ItemResult:
        cid = str(line.get("custom_id"))
        response, error = line.get("response"), line.get("error")
        if response is not None:
            got = line_reply(self, int(response.get("status_code", 500)), response.get("body"))  # type: ignore[arg-type]
            return (
                ItemResult(cid, error=got) if isinstance(got, Exception) else ItemResult(cid, got)
            )
        code = str((error or {}).get("code") or "")
        if code in UNFINISHED:
            return ItemResult(cid)
        message = f"batch item failed: {(error or {}).get('message') or code or 'no response'}"
        return ItemResult(cid, error=ProviderUnavailable(message[:300], **self._fields))  # type: ignore[attr-defined]

    def batch_cancel(self, external_id: str) -> httpx.Request:
        return self.post(f"{self.base_url}/batches/{external_id}/cancel", {})  # type: ignore[attr-defined]
