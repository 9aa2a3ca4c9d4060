"""Pure pieces of `llmq serve`, table-driven: line splitting of stored chunks, validation
errors, OpenAI output lines for every job outcome, and the per-process poll memo."""

from __future__ import annotations

import threading
import time

import pytest
from openai.types.chat import ChatCompletion

from core.jsonl import MAX_LINE_BYTES, InputError
from llmq.serve.batch_input import max_cost, numbered_lines, validation_errors
from llmq.serve.live import LiveMemo
from producer.openai_format import openai_line


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\nb\n"], [(1, b"a"), (2, b"b")]),
        ([b"a\r\nb"], [(1, b"a"), (2, b"b")]),  # CRLF, and no newline at the end
        ([b"ab", b"c\nd", b"e\n"], [(1, b"abc"), (2, b"de")]),  # lines across chunks
        ([b"\n\n"], [(1, b""), (2, b"")]),
        ([], []),
    ],
)
def test_numbered_lines(chunks: list[bytes], expected: list[tuple[int, bytes]]) -> None:
    assert list(numbered_lines(chunks)) == expected


def test_an_oversized_line_is_reported_not_held() -> None:
    big = [b"x" * (MAX_LINE_BYTES // 2)] * 3  # 1.5 MiB without a newline, in pieces
    lines = list(numbered_lines([b"ok\n", *big, b"tail\nlast"]))
    assert lines == [(1, b"ok"), (2, None), (3, b"last")]


def test_validation_errors_in_openai_shape() -> None:
    exc = InputError(["line 2: invalid JSON: x", "line 9: unknown model 'q'", "... and 3 more"])
    assert validation_errors(exc) == [
        {"code": "invalid_request", "line": 2, "message": "invalid JSON: x", "param": None},
        {"code": "invalid_request", "line": 9, "message": "unknown model 'q'", "param": None},
        {"code": "too_many_errors", "line": None, "message": "... and 3 more", "param": None},
    ]
    assert validation_errors(InputError(["empty file: no job lines"]))[0]["code"] == "invalid_file"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [(None, None), ({"x": "y"}, None), ({"llmq_max_cost_usd": "2.5"}, "2.50000000")],
)
def test_max_cost_from_metadata(metadata, expected) -> None:  # type: ignore[no-untyped-def]
    got = max_cost(metadata)
    assert (None if got is None else str(got)) == expected


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "NaN", "1e12"])
def test_bad_max_cost_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        max_cost({"llmq_max_cost_usd": bad})


def _result(status: str, **kw) -> dict:  # type: ignore[no-untyped-def, type-arg]
    base = {"custom_id": "c1", "job_id": "0b7e1f0c-0000-4000-8000-000000000001", "status": status}
    return {"response": None, "usage": None, "error": None, **base, **kw}


def test_a_succeeded_line_carries_a_chat_completion() -> None:
    result = _result(
        "succeeded",
        response={"text": "hi", "model": "gpt-x", "provider": "openai", "finish_reason": "length"},
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    )
    line, ok = openai_line(result, 1700000000)
    assert ok and line["error"] is None and line["custom_id"] == "c1"
    assert line["id"] == "batch_req_0b7e1f0c000040008000000000000001"
    assert line["response"]["status_code"] == 200
    completion = ChatCompletion.model_validate(line["response"]["body"])
    assert completion.choices[0].message.content == "hi"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.total_tokens == 4 and completion.created == 1700000000


@pytest.mark.parametrize(
    ("result", "code", "expired_code"),
    [
        (_result("failed", error={"type": "bad_request", "message": "no"}), "bad_request", None),
        (_result("cancelled"), "batch_cancelled", "batch_expired"),
        (
            _result("quota_exceeded", error={"type": "quota_exceeded", "message": "m"}),
            "quota_exceeded",
            None,
        ),  # fmt: skip
        (_result("queued"), "queued", None),
    ],
)
def test_other_outcomes_are_error_lines(result, code, expired_code) -> None:  # type: ignore[no-untyped-def]
    line, ok = openai_line(result, 0)
    assert not ok and line["response"] is None
    assert line["error"]["code"] == code and line["error"]["message"]
    if expired_code:
        assert openai_line(result, 0, "batch_expired")[0]["error"]["code"] == expired_code


def test_live_memo_computes_once_per_period_for_many_callers() -> None:
    memo: LiveMemo[int] = LiveMemo(0.3)
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.1)
        return len(calls)

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(memo.get("b", slow))) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 20 and len(calls) == 1
    time.sleep(0.35)
    assert memo.get("b", slow) == 2  # expired: computed again
    memo.forget("b")
    assert memo.get("b", slow) == 3
    assert LiveMemo(0).get("b", slow) == 4  # ttl 0: never memoised
