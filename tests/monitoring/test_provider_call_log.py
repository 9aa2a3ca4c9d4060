"""`log_provider_call` writes exactly one line per call, plain key=value or one JSON object."""

from __future__ import annotations

import io
import json
import logging
import uuid
from decimal import Decimal

import pytest

from workers.observability.logs import JsonFormatter, log_provider_call
from workers.observability.redaction import RedactionFilter

JOB, BATCH = uuid.uuid4(), uuid.uuid4()


def _logger(json_lines: bool) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger(f"llmq.test.call.{json_lines}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    return logger, stream


def _call(logger: logging.Logger, **over: object) -> None:
    fields: dict[str, object] = dict(
        job_id=JOB, batch_id=BATCH, attempt_no=2, provider="anthropic", model="claude-x",
        deployment="anthropic/claude-x", status=200, outcome="succeeded", error_kind=None,
        latency_ms=812.4, prompt_tokens=31, completion_tokens=7, cost_usd=Decimal("0.00012300"),
    )  # fmt: skip
    fields.update(over)
    log_provider_call(logger, **fields)  # type: ignore[arg-type]


def test_plain_line() -> None:
    logger, stream = _logger(False)
    _call(logger)
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("provider_call ")
    for part in (f"job_id={JOB}", f"batch_id={BATCH}", "attempt_no=2", "provider=anthropic",
                 "model=claude-x", "status=200", "outcome=succeeded", "error_kind=-",
                 "latency_ms=812", "prompt_tokens=31", "completion_tokens=7",
                 "cost_usd=0.00012300"):  # fmt: skip
        assert part in line


def test_json_line() -> None:
    logger, stream = _logger(True)
    _call(logger, status=429, outcome="failed", error_kind="rate_limited", cost_usd=None)
    (line,) = stream.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["msg"] == "provider_call"
    assert doc["level"] == "WARNING"  # failures stand out
    assert doc["job_id"] == str(JOB) and doc["batch_id"] == str(BATCH)
    assert doc["status"] == 429 and doc["error_kind"] == "rate_limited"
    assert doc["cost_usd"] is None and doc["prompt_tokens"] == 31
    assert doc["latency_ms"] == 812


@pytest.mark.parametrize("json_lines", [False, True])
def test_transport_error_without_status(json_lines: bool) -> None:
    logger, stream = _logger(json_lines)
    _call(logger, status=None, outcome="failed", error_kind="unavailable", latency_ms=None)
    assert len(stream.getvalue().splitlines()) == 1
