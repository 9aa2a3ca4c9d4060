"""The simulated batch APIs' routes and objects (issue 18), one function per wire format.

Owns: `batch_routes(name, dialect)`: (method, path, handler) for the batch API of the endpoint
`name` when its dialect has one: the OpenAI Files + Batch API, Anthropic Message Batches and
Gemini `batchGenerateContent` + `batches/{id}` operations. Handlers take (state, dialect, name,
request); the batch life cycle itself is `simulator/batches.py`. Must not: decide outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from simulator import batches as sb
from simulator.providers.anthropic import AnthropicDialect
from simulator.providers.base import Dialect, SimError, dumps
from simulator.providers.google import GoogleDialect
from simulator.providers.openai import OpenAIDialect
from simulator.state import SimState

BatchHandler = Callable[[SimState, Dialect, str, web.Request], Awaitable[web.Response]]
Route = tuple[str, str, BatchHandler]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def _guard(handler: BatchHandler) -> BatchHandler:
    async def run(
        state: SimState, dialect: Dialect, name: str, request: web.Request
    ) -> web.Response:
        try:
            dialect.check_auth(request)
            return await handler(state, dialect, name, request)
        except SimError as err:
            rendered = dialect.error(err, state.next_id())
            return web.Response(
                body=rendered.body, status=rendered.status, content_type="application/json"
            )

    return run


# ---- OpenAI: /v1/files, /v1/batches ------------------------------------------------------


def _oai_object(state: SimState, b: sb.SimBatch) -> dict[str, Any]:
    c = sb.counts(b)
    status = {"in_progress": "in_progress", "cancelled": "cancelled"}.get(b.state, b.state)
    out_id = err_id = None
    if b.done and b.state != "failed":
        out_id, err_id = _oai_files(state, b)
    return {
        "id": b.id, "object": "batch", "endpoint": "/v1/chat/completions", "status": status,
        "input_file_id": b.meta.get("input_file_id"), "completion_window": "24h",
        "output_file_id": out_id, "error_file_id": err_id, "created_at": int(b.created),
        "metadata": b.meta.get("metadata") or {},
        "request_counts": {"total": len(b.items), "completed": c["succeeded"], "failed": c["errored"]},
    }  # fmt: skip


def _oai_files(state: SimState, b: sb.SimBatch) -> tuple[str | None, str | None]:
    if "out" not in b.meta:
        ok, bad = [], []
        for cid, _ in b.items:
            a = b.answers[cid]
            if cid not in b.ran:
                code = "batch_expired" if b.state == "expired" else "batch_cancelled"
                bad.append(
                    {
                        "id": f"batch_req_{cid}",
                        "custom_id": cid,
                        "response": None,
                        "error": {"code": code, "message": f"This request was not run ({code})."},
                    }
                )
                continue
            line = {
                "id": f"batch_req_{cid}",
                "custom_id": cid,
                "response": {"status_code": a.status, "request_id": cid, "body": a.body},
                "error": None,
            }
            (ok if a.ok else bad).append(line)
        for key, lines in (("out", ok), ("err", bad)):
            fid = sb.new_id("file-") if lines else None
            if fid:
                state.batches.files[fid] = "\n".join(json.dumps(x) for x in lines).encode() + b"\n"
            b.meta[key] = fid
    return b.meta["out"], b.meta["err"]


async def _oai_upload(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    form = await request.post()
    upload = form.get("file")
    if upload is None or not hasattr(upload, "file") or form.get("purpose") != "batch":
        raise SimError(400, "invalid", "file and purpose=batch are required")
    data = upload.file.read()
    fid = sb.new_id("file-")
    state.batches.files[fid] = data
    return _json({"id": fid, "object": "file", "bytes": len(data), "purpose": "batch",
                  "filename": upload.filename, "status": "processed"})  # fmt: skip


async def _oai_create(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    body = await request.json()
    data = state.batches.files.get(str(body.get("input_file_id")))
    if data is None:
        raise SimError(400, "invalid", "input_file_id: no such file")
    if body.get("completion_window") != "24h" or body.get("endpoint") != "/v1/chat/completions":
        raise SimError(
            400, "invalid", "completion_window must be 24h; endpoint /v1/chat/completions"
        )
    lines = [json.loads(x) for x in data.decode().splitlines() if x.strip()]
    items = [(str(x.get("custom_id")), x.get("body")) for x in lines]
    b = sb.open_batch(
        state,
        dialect,
        name,
        request,
        items,
        (body.get("metadata") or {}).get("llmq_batch"),
        "batch_",
    )
    b.meta.update(input_file_id=body["input_file_id"], metadata=body.get("metadata") or {})
    return _json(_oai_object(state, b))


async def _oai_get(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    return _json(_oai_object(state, sb.find(state, request.match_info["id"])))


async def _oai_list(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    mine = [sb.advance(state, b) for b in state.batches.batches.values() if b.endpoint == name]
    data = [_oai_object(state, b) for b in reversed(mine)][:100]
    return _json({"object": "list", "data": data, "has_more": False})


async def _oai_cancel(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    return _json(_oai_object(state, sb.cancel(state, sb.find(state, request.match_info["id"]))))


async def _oai_content(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    data = state.batches.files.get(request.match_info["id"])
    if data is None:
        raise SimError(404, "not_found", "no such file", ctx={"model": request.match_info["id"]})
    return web.Response(body=data, content_type="application/jsonl")


def _openai(base: str) -> list[Route]:
    return [
        ("POST", f"{base}/files", _oai_upload),
        ("POST", f"{base}/batches", _oai_create),
        ("GET", f"{base}/batches", _oai_list),
        ("GET", base + "/batches/{id}", _oai_get),
        ("POST", base + "/batches/{id}/cancel", _oai_cancel),
        ("GET", base + "/files/{id}/content", _oai_content),
    ]


# ---- Anthropic: /v1/messages/batches ---------------------------------------------------------


def _ant_object(b: sb.SimBatch, results_url: str) -> dict[str, Any]:
    c = sb.counts(b)
    unfinished = c["unfinished"]
    return {
        "id": b.id, "type": "message_batch",
        "processing_status": "ended" if b.done else "in_progress",
        "request_counts": {
            "processing": c["processing"], "succeeded": c["succeeded"], "errored": c["errored"],
            "canceled": unfinished if b.state in ("cancelled", "failed") else 0,
            "expired": unfinished if b.state == "expired" else 0,
        },
        "results_url": results_url if b.done else None,
        "created_at": b.created,
    }  # fmt: skip


def _ant_url(request: web.Request, name: str, b: sb.SimBatch) -> str:
    return f"{request.url.origin()}/{name}/v1/messages/batches/{b.id}/results"


async def _ant_create(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    body = await request.json()
    reqs = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(reqs, list):
        raise SimError(400, "invalid", "requests: Field required")
    items = [(str(r.get("custom_id")), r.get("params")) for r in reqs]
    b = sb.open_batch(state, dialect, name, request, items, None, "msgbatch_")
    return _json(_ant_object(b, _ant_url(request, name, b)))


async def _ant_get(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    b = sb.find(state, request.match_info["id"])
    return _json(_ant_object(b, _ant_url(request, name, b)))


async def _ant_list(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    mine = [sb.advance(state, b) for b in state.batches.batches.values() if b.endpoint == name]
    data = [_ant_object(b, _ant_url(request, name, b)) for b in reversed(mine)][:100]
    return _json({"data": data, "has_more": False})


async def _ant_cancel(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    b = sb.cancel(state, sb.find(state, request.match_info["id"]))
    return _json(_ant_object(b, _ant_url(request, name, b)))


async def _ant_results(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    b = sb.find(state, request.match_info["id"])
    if not b.done:
        raise SimError(400, "invalid", "results are not available until the batch has ended")
    lines = []
    for cid, _ in b.items:
        a = b.answers[cid]
        if cid not in b.ran:
            kind = "expired" if b.state == "expired" else "canceled"
            lines.append({"custom_id": cid, "result": {"type": kind}})
        elif a.ok:
            lines.append({"custom_id": cid, "result": {"type": "succeeded", "message": a.body}})
        else:
            lines.append({"custom_id": cid, "result": {"type": "errored", "error": a.body}})
    data = "\n".join(json.dumps(x) for x in lines).encode() + b"\n"
    return web.Response(body=data, content_type="application/binary")


def _anthropic(base: str) -> list[Route]:
    p = base + "/v1/messages/batches"
    return [
        ("POST", p, _ant_create),
        ("GET", p, _ant_list),
        ("GET", p + "/{id}", _ant_get),
        ("POST", p + "/{id}/cancel", _ant_cancel),
        ("GET", p + "/{id}/results", _ant_results),
    ]


# ---- Gemini: models/{m}:batchGenerateContent, batches/{id} ------------------------------------

_GG_STATE = {"in_progress": "BATCH_STATE_RUNNING", "completed": "BATCH_STATE_SUCCEEDED",
             "expired": "BATCH_STATE_EXPIRED", "failed": "BATCH_STATE_FAILED",
             "cancelled": "BATCH_STATE_CANCELLED"}  # fmt: skip


def _gg_object(b: sb.SimBatch) -> dict[str, Any]:
    c = sb.counts(b)
    out: dict[str, Any] = {
        "name": f"batches/{b.id}",
        "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": f"models/{b.model}", "displayName": b.tag, "state": _GG_STATE[b.state],
            "batchStats": {"requestCount": str(len(b.items)), "successfulRequestCount": str(c["succeeded"]),
                           "failedRequestCount": str(c["errored"]), "pendingRequestCount": str(c["processing"])},
        },
        "done": b.done,
    }  # fmt: skip
    if b.done and b.state != "failed":
        inlined = []
        for cid in b.ran:
            a = b.answers[cid]
            entry = {"response": a.body} if a.ok else {"error": a.body.get("error", a.body)}
            inlined.append({**entry, "metadata": {"key": cid}})
        out["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
                           "inlinedResponses": {"inlinedResponses": inlined}}  # fmt: skip
    return out


async def _gg_create(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    body = await request.json()
    batch = (body or {}).get("batch") or {}
    reqs = ((batch.get("input_config") or {}).get("requests") or {}).get("requests")
    if not isinstance(reqs, list):
        raise SimError(400, "invalid", "batch.input_config.requests.requests is required")
    items = [(str((r.get("metadata") or {}).get("key")), r.get("request")) for r in reqs]
    b = sb.open_batch(state, dialect, name, request, items, batch.get("display_name"), "")
    return _json(_gg_object(b))


async def _gg_get(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    return _json(_gg_object(sb.find(state, request.match_info["id"])))


async def _gg_list(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    mine = [sb.advance(state, b) for b in state.batches.batches.values() if b.endpoint == name]
    return _json({"operations": [_gg_object(b) for b in reversed(mine)][:100]})


async def _gg_cancel(
    state: SimState, dialect: Dialect, name: str, request: web.Request
) -> web.Response:
    sb.cancel(state, sb.find(state, request.match_info["id"]))
    return _json({})


def _gemini(base: str) -> list[Route]:
    return [
        ("POST", base + "/v1beta/models/{model}:batchGenerateContent", _gg_create),
        ("GET", base + "/v1beta/batches", _gg_list),
        ("GET", base + "/v1beta/batches/{id}", _gg_get),
        ("POST", base + "/v1beta/batches/{id}:cancel", _gg_cancel),
    ]


_BY_DIALECT: dict[type[Dialect], Callable[[str], list[Route]]] = {
    OpenAIDialect: _openai,
    AnthropicDialect: _anthropic,
    GoogleDialect: _gemini,
}


def batch_routes(name: str, dialect: Dialect) -> list[Route]:
    """(method, path, handler) of the endpoint's batch API; [] when its dialect has none."""
    build = _BY_DIALECT.get(type(dialect))
    if build is None:
        return []
    return [(m, p, _guard(h)) for m, p, h in build(f"/{name}{dialect.base_path}")]
