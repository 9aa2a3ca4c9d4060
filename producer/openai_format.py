"""Result lines in OpenAI's Batch output format, for `llmq results --format openai` and the
output/error files of `llmq serve`.

Owns: turning one `batch_reads_repo.iter_results` dict into one OpenAI Batch output line::

    {"id": "batch_req_…", "custom_id": …,
     "response": {"status_code": 200, "request_id": …, "body": <chat.completion>},
     "error": null}

A succeeded job gets a `chat.completion` body the official `openai` SDK's `ChatCompletion` type
parses (an embedding job: a `CreateEmbeddingResponse` body, `embedding_list`); anything else gets ``"response": null`` and ``"error": {"code", "message"}`` (such lines
go to a batch's error file). Must not: do I/O; it is a pure function of the result dict.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from core.vectors import b64_vector

# `llmq results --format`: llmq's own lines, or OpenAI Batch output lines (a *format* name,
# not the provider: any provider's answer is written in it).
RESULT_FORMATS = ("llmq", "openai")
OPENAI_FORMAT = RESULT_FORMATS[1]
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
CANCELLED_MESSAGE = "the batch was cancelled before this request ran"
EXPIRED_MESSAGE = "the batch expired before this request ran"


def _hex(job_id: str) -> str:
    return job_id.replace("-", "")


def chat_completion(result: dict[str, Any], created: int) -> dict[str, Any]:
    """The `chat.completion` object of a succeeded result dict."""
    response = result["response"]
    usage = result.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    finish = response.get("finish_reason") or "stop"
    return {
        "id": "chatcmpl-" + _hex(result["job_id"]),
        "object": "chat.completion",
        "created": created,
        "model": response.get("model") or "",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.get("text"), "refusal": None},
                "finish_reason": finish if finish in FINISH_REASONS else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            # issue 19: OpenAI's own nesting (cache writes have no OpenAI field)
            "prompt_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
            "completion_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens", 0)},
        },
        "system_fingerprint": None,
    }


def embedding_list(result: dict[str, Any]) -> dict[str, Any]:
    """A `CreateEmbeddingResponse` body (issue 17): one item per input, in input order, each
    vector as floats or, when the line asked `encoding_format: base64`, as base64 of its
    little-endian float32 bytes (what OpenAI sends)."""
    response = result["response"]
    as_b64 = response.get("encoding_format") == "base64"
    usage = result.get("usage") or {"prompt_tokens": 0, "total_tokens": 0}
    data = [
        {"object": "embedding", "index": i, "embedding": b64_vector(v) if as_b64 else v}
        for i, v in enumerate(response["embeddings"])
    ]
    return {
        "object": "list",
        "data": data,
        "model": response.get("model") or "",
        "usage": {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["total_tokens"]},
    }


def line_error(result: dict[str, Any], cancelled_code: str = "batch_cancelled") -> dict[str, str]:
    """`{"code", "message"}` for a result that has no completion."""
    status = result["status"]
    if status == "cancelled":
        message = EXPIRED_MESSAGE if cancelled_code == "batch_expired" else CANCELLED_MESSAGE
        return {"code": cancelled_code, "message": message}
    error = result.get("error") or {}
    if status == "failed":
        return {"code": error.get("type") or "failed", "message": error.get("message") or ""}
    detail = f": {error['message']}" if error.get("message") else ""
    return {"code": status, "message": f"the request has not finished ({status}){detail}"}


def openai_line(
    result: dict[str, Any], created: int, cancelled_code: str = "batch_cancelled"
) -> tuple[dict[str, Any], bool]:
    """One output line and whether it is a success (False: it belongs in the error file).

    Args:
        result: one `iter_results` dict.
        created: unix seconds for the completion's `created`.
        cancelled_code: the error code of cancelled jobs (`batch_expired` after an expiry).
    """
    line: dict[str, Any] = {"id": "batch_req_" + _hex(result["job_id"]), "custom_id": None}
    line["custom_id"] = result["custom_id"]
    if result["status"] == "succeeded" and result.get("response") is not None:
        embedded = "embeddings" in result["response"]
        body = embedding_list(result) if embedded else chat_completion(result, created)
        line["response"] = {"status_code": 200, "request_id": result["job_id"], "body": body}
        line["error"] = None
        return line, True
    line["response"] = None
    line["error"] = line_error(result, cancelled_code)
    return line, False


def openai_lines(results: Iterable[dict[str, Any]], created: int) -> Iterator[dict[str, Any]]:
    """Every result as an OpenAI Batch line, in input order (successes and errors mixed)."""
    for result in results:
        yield openai_line(result, created)[0]
