"""Helpers shared by the producer tests: ledger row counts and the broker's `llmq` list."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from sqlalchemy import Engine, text

from core.names import JOB_QUEUE
from core.publish import redis_queue_keys

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
    """Raw messages on the broker's `llmq` lists (every priority step, in the order workers
    read them), oldest (next to be consumed) first within each."""
    r = redis.Redis.from_url(redis_url)
    try:
        return [m for key in redis_queue_keys(JOB_QUEUE) for m in reversed(r.lrange(key, 0, -1))]
    finally:
        r.close()


def queued_job_ids(redis_url: str) -> list[str]:
    """The job ids those messages carry, in order: one per `llmq.process_job` message, a
    chunk's ids in order for `llmq.process_chunk` (issue 21)."""
    ids: list[str] = []
    for raw in queued_messages(redis_url):
        first = decode(raw)["body"][0][0]
        ids.extend(first if isinstance(first, list) else [first])
    return ids


def decode(raw: bytes) -> dict[str, Any]:
    """A kombu Redis envelope with its base64 body decoded: {"headers", "body", ...}."""
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return envelope
