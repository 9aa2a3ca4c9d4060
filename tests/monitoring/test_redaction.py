"""The redaction filter scrubs configured keys and key-shaped text from every part of a record."""

from __future__ import annotations

import io
import json
import logging

import pytest

from workers.observability.logs import JsonFormatter, setup_logging
from workers.observability.redaction import REDACTED, RedactionFilter, env_secrets

KEY = "sk-test-SECRET-123"
PLAIN_KEY = (
    "AIzaPlainGoogleKey987654"  # no recognisable prefix: only the configured value catches it
)

CASES = [
    # (text, must not survive)
    (f"calling with key {KEY}", KEY),
    (f"key={PLAIN_KEY} then", PLAIN_KEY),
    ("Authorization: Bearer hf_abcdefghijklmnop", "hf_abcdefghijklmnop"),
    ("headers={'Authorization': 'Bearer tok_zzzzzzzzzz'}", "tok_zzzzzzzzzz"),
    ("x-api-key: anthropic-raw-value-1", "anthropic-raw-value-1"),
    ('{"x-goog-api-key": "goog-raw-value-2"}', "goog-raw-value-2"),
    ("https://gen.example/v1/models/m:generate?key=qkey-value-3&alt=sse", "qkey-value-3"),
    ("api_key='cohere-raw-value-4'", "cohere-raw-value-4"),
    ("sk-ant-api03-XYZXYZXYZXYZ in the body", "sk-ant-api03-XYZXYZXYZXYZ"),
]


@pytest.mark.parametrize(("text", "secret"), CASES)
def test_scrub_removes_secret(text: str, secret: str) -> None:
    out = RedactionFilter([PLAIN_KEY]).scrub(text)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "job 3f1c2a9e-0000-4000-8000-000000000001 succeeded in 120 ms",
        "provider_call provider=openai model=gpt-4o-mini status=200 outcome=succeeded",
        "task-id skeleton: desk-chair",  # 'sk-' inside a word is not a key
    ],
)
def test_scrub_keeps_ordinary_text(text: str) -> None:
    assert RedactionFilter([PLAIN_KEY]).scrub(text) == text


def test_short_configured_values_are_ignored() -> None:
    # A 3-character "key" would blank every occurrence of common words.
    assert RedactionFilter(["abc"]).scrub("abcdef") == "abcdef"


def _capture(json_lines: bool) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(message)s"))
    handler.addFilter(RedactionFilter([PLAIN_KEY]))
    logger = logging.getLogger(f"llmq.test.redaction.{json_lines}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


@pytest.mark.parametrize("json_lines", [False, True])
def test_every_part_of_a_record_is_scrubbed(json_lines: bool) -> None:
    logger, stream = _capture(json_lines)
    logger.info("args %s and %r", KEY, {"Authorization": f"Bearer {PLAIN_KEY}"})
    logger.warning("extra", extra={"llmq_fields": {"note": f"key {PLAIN_KEY}"}})
    try:
        raise RuntimeError(f"upstream said: invalid api key {KEY}")
    except RuntimeError:
        logger.exception("call failed")
    logger.info("with stack", stack_info=True, extra={"hdr": f"x-api-key: {PLAIN_KEY}"})
    out = stream.getvalue()
    assert KEY not in out and PLAIN_KEY not in out
    assert "RuntimeError" in out  # the exception is still reported, just scrubbed
    if json_lines:
        docs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert any("exc" in d for d in docs)


def test_setup_logging_redacts_root_and_child_loggers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "w.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging(json_lines=True, logfile=str(path), secrets=[PLAIN_KEY])
        logging.getLogger("some.library.deep").error("got %s", PLAIN_KEY)
        logging.getLogger("llmq.x").info("Bearer %s", "abcdefghijkl")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    text = path.read_text()
    assert PLAIN_KEY not in text and "abcdefghijkl" not in text
    assert len(text.splitlines()) == 2


def test_env_secrets_picks_credentials_only() -> None:
    env = {
        "OPENAI_API_KEY": KEY,
        "HF_TOKEN": "hf_token_value",
        "FLOWER_BASIC_AUTH": "admin:flower-pass-1,ops:flower-pass-2",
        "PATH": "/usr/bin",
        "LLMQ_DATABASE_URL": "postgresql://localhost/llmq",
    }
    found = env_secrets(env)
    assert {KEY, "hf_token_value", "flower-pass-1", "flower-pass-2"} <= set(found)
    assert "/usr/bin" not in found
