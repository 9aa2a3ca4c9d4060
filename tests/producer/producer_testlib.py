"""Helpers shared by the producer tests: ledger row counts and the broker's `llmq` list."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from sqlalchemy import Engine, text

from core.names import JOB_QUEUE

MODELS = [
    {"name": "m-default", "provider": "openai", "is_default": True},
    {"name": "m-other", "provider": "anthropic"},
]


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("batches", "jobs", "attempts")
        }


def queued_messages(redis_url: str) -> list[bytes]:
    """Raw messages on the broker's `llmq` list, oldest (next to be consumed) first."""
    r = redis.Redis.from_url(redis_url)
    try:
        return list(reversed(r.lrange(JOB_QUEUE, 0, -1)))
    finally:
        r.close()


def decode(raw: bytes) -> dict[str, Any]:
    """A kombu Redis envelope with its base64 body decoded: {"headers", "body", ...}."""
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return envelope
