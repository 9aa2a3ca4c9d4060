"""Measure `llmq submit` on a large file: parse, insert and enqueue seconds, separately.

Not a test (no assertion): it prints the figures. By default it creates a scratch Postgres
database, migrates it, submits N generated lines (half native, half OpenAI Batch) to a scratch
Redis db, prints the timings, then drops the database and deletes the queued messages.

    .venv/bin/python bench/submit_bench.py                 # 100,000 lines
    .venv/bin/python bench/submit_bench.py --lines 20000 --keep
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

from core.ledger.migrate import upgrade
from core.publish import redis_queue_keys
from producer.client import Client
from schemas.config import LLMConfig

CONFIG = LLMConfig.model_validate(
    {
        "models": [
            {"name": "gpt-4o-mini", "provider": "openai", "is_default": True},
            {"name": "claude-haiku-4-5", "provider": "anthropic"},
        ]
    }
)


def write_lines(path: Path, n: int) -> None:
    """Realistically sized lines (~300 bytes): alternating native and OpenAI Batch format."""
    with open(path, "w") as f:
        for i in range(n):
            text_ = (
                f"Ticket {i}: the export button does nothing on the reports page since the update."
            )
            if i % 2:
                line = {
                    "custom_id": f"req-{i}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": "claude-haiku-4-5",
                        "messages": [
                            {"role": "system", "content": "Summarise in one sentence."},
                            {"role": "user", "content": text_},
                        ],
                        "max_tokens": 64,
                        "temperature": 0,
                    },
                }
            else:
                line = {
                    "custom_id": f"req-{i}",
                    "system": "Summarise in one sentence.",
                    "prompt": text_,
                    "max_tokens": 64,
                    "metadata": {"ticket": i},
                }
            f.write(json.dumps(line) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--pg-admin", default="postgresql+psycopg://127.0.0.1/postgres")
    ap.add_argument("--broker-url", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--keep", action="store_true", help="keep the database and the messages")
    args = ap.parse_args()

    name = f"llmq_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.pg_admin.rsplit("/", 1)[0] + "/" + name
    broker = redis.Redis.from_url(args.broker_url)
    before = _queued(broker)
    try:
        upgrade(url)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.jsonl"
            write_lines(path, args.lines)
            size_mb = path.stat().st_size / 1e6
            with Client(url, args.broker_url, CONFIG) as client:
                start, cpu = time.perf_counter(), time.process_time()
                result = client.submit_detailed(path, name="bench")
                total, cpu = time.perf_counter() - start, time.process_time() - cpu
            queued = _queued(broker) - before
        t = result.timings
        print(
            f"lines        {args.lines} ({size_mb:.1f} MB), jobs {result.jobs}, messages {queued}"
        )
        print(f"parse        {t['parse_s']:.2f} s")
        print(f"insert       {t['insert_s']:.2f} s   (one transaction, COPY)")
        print(f"enqueue      {t['enqueue_s']:.2f} s   (pipelined LPUSH)")
        print(f"total        {total:.2f} s   ({args.lines / total:,.0f} lines/s)")
        print(f"client CPU   {cpu:.2f} s   (Postgres and Redis work not included)")
        print(
            f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
        )
        print(f"database     {url if args.keep else '(dropped)'}")
    finally:
        if not args.keep:
            if before == 0:  # a scratch queue: no worker should chase ids of a dropped database
                broker.delete(*redis_queue_keys())
            else:
                print(f"note: {args.broker_url} already held messages; the bench's were left")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        broker.close()
        admin.dispose()


if __name__ == "__main__":
    main()


def _queued(broker: redis.Redis) -> int:
    return sum(int(broker.llen(key)) for key in redis_queue_keys())
