"""Issue 20 item 14: a file is submitted in two streaming passes, in memory flat in its length.

Pass 1 validates every line and keeps no spec; pass 2 parses again and inserts chunk by chunk
in ONE transaction, so a bad line (or a file that changed in between) still writes nothing;
ids are published page by page after the commit, in input order.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from producer_testlib import queued_job_ids, queued_messages, table_counts
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core import jsonl
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import make_sessionmaker
from core.ledger.models import Job
from producer import submit
from producer.client import Client, InputError
from schemas.config import LLMConfig
from schemas.job import JobSpec


def _write(path: Path, n: int, bad_at: int | None = None) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1, n + 1):
            if i == bad_at:
                f.write('{"custom_id": "broken"\n')
                continue
            body = f"Ticket {i}: the export button does nothing on the reports page."
            f.write(json.dumps({"custom_id": f"r{i}", "prompt": body, "max_tokens": 64}) + "\n")
    return path


def _peak_kib(fn: object) -> float:
    tracemalloc.start()
    try:
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def test_validation_pass_memory_is_flat_in_the_number_of_lines(
    tmp_path: Path, cfg: LLMConfig
) -> None:
    small, large = _write(tmp_path / "s.jsonl", 1_000), _write(tmp_path / "l.jsonl", 16_000)
    assert jsonl.validate_file(large, cfg) == 16_000
    growth = _peak_kib(lambda: jsonl.validate_file(large, cfg)) - _peak_kib(
        lambda: jsonl.validate_file(small, cfg)
    )
    kept = _peak_kib(lambda: jsonl.parse_file(large, cfg))
    # only the custom_ids seen are kept (~150 bytes a line); the specs were ~2 KB a line
    assert growth < 15_000 * 0.4, f"validation grew by {growth:.0f} KiB"
    assert kept > 10 * growth


def test_streamed_submit_memory_is_flat_and_stores_every_line_in_order(
    tmp_path: Path, clean_db: str, redis_url: str, cfg: LLMConfig, engine: Engine
) -> None:
    # both above one insert chunk (2,000 specs held at a time): the difference is per line
    small, large = _write(tmp_path / "s.jsonl", 3_000), _write(tmp_path / "l.jsonl", 15_000)
    with Client(clean_db, redis_url, cfg) as client:
        client.submit_detailed(small, enqueue=False)  # warm up: imports, pools, caches
        base = _peak_kib(lambda: client.submit_detailed(small, enqueue=False))
        results: list[object] = []
        peak = _peak_kib(lambda: results.append(client.submit_detailed(large, enqueue=False)))
    # the custom_ids seen (~200 bytes a line); holding the specs took ~2 KB a line
    assert peak - base < 12_000 * 0.35, f"submit grew by {peak - base:.0f} KiB for 12k lines"
    batch_id = results[0].batch_id  # type: ignore[attr-defined]
    with Session(engine) as s:
        rows = s.execute(
            select(Job.line_no, Job.custom_id).where(Job.batch_id == batch_id).order_by(Job.line_no)
        ).all()
    assert [(n, c) for n, c in rows] == [(i, f"r{i}") for i in range(1, 15_001)]
    assert queued_messages(redis_url) == []  # enqueue=False publishes nothing


def test_ids_are_published_page_by_page_in_input_order(
    tmp_path: Path,
    clean_db: str,
    redis_url: str,
    cfg: LLMConfig,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(submit, "PUBLISH_CHUNK", 7)
    monkeypatch.setattr(submit, "INSERT_CHUNK", 5)
    path = _write(tmp_path / "in.jsonl", 23)
    with Client(clean_db, redis_url, cfg) as client:
        result = client.submit_detailed(path)
    assert result.jobs == result.enqueued == 23
    with Session(engine) as s:
        ids = s.scalars(
            select(Job.id).where(Job.batch_id == result.batch_id).order_by(Job.line_no)
        ).all()
    sent = queued_job_ids(redis_url)
    assert sent == [str(i) for i in ids]


def test_a_bad_last_line_after_many_chunks_writes_nothing(
    tmp_path: Path, clean_db: str, redis_url: str, cfg: LLMConfig, engine: Engine
) -> None:
    path = _write(tmp_path / "in.jsonl", 3 * submit.INSERT_CHUNK + 1, bad_at=3 * 2000 + 1)
    with Client(clean_db, redis_url, cfg) as client, pytest.raises(InputError) as err:
        client.submit_detailed(path)
    assert f"line {3 * 2000 + 1}: invalid JSON" in str(err.value)
    assert table_counts(engine) == {"batches": 0, "jobs": 0, "attempts": 0}
    assert queued_messages(redis_url) == []


def _specs(n: int, then_fail: bool) -> Iterator[JobSpec]:
    for i in range(n):
        yield JobSpec(
            custom_id=f"c{i}", model="m-default", messages=[{"role": "user", "content": "x"}]
        )
    if then_fail:  # what iter_file raises when the file changed after it was validated
        raise InputError(["line 9: invalid JSON"], "in.jsonl")


@pytest.mark.parametrize(
    ("yielded", "total", "then_fail"), [(4500, 4500, True), (4500, 4600, False)]
)
def test_the_insert_pass_is_one_transaction(
    clean_db: str, redis_url: str, engine: Engine, yielded: int, total: int, then_fail: bool
) -> None:
    sessions = make_sessionmaker(engine)
    with pytest.raises(InputError):
        submit.store_stream_and_enqueue(
            sessions,
            redis_url,
            _specs(yielded, then_fail),
            total,
            NewBatch(tenant="t", source="in.jsonl"),
            lambda chunk: [None] * len(chunk),
        )
    assert table_counts(engine) == {"batches": 0, "jobs": 0, "attempts": 0}
    assert queued_messages(redis_url) == []
