"""End to end (issue 11): the producer submits a JSONL file, a real Celery worker subprocess runs
it against the simulator; resubmitting it is answered from the ledger: no provider request,
cost 0, the same results, and `llmq status` / `llmq usage` show the hits and the saving."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from helpers.jobs import wait_settled
from helpers.llm_config import load_test_config, model

from producer.client import Client

PRICED = {"input_cost_per_mtok": "0.15", "output_cost_per_mtok": "0.6"}
N_JOBS = 30


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def questions(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"custom_id": f"q{i:02d}", "prompt": f"Question {i}?", **fields} for i in range(n)]


def llmq(rig, *args: str) -> str:  # type: ignore[no-untyped-def]
    """Run the `llmq` CLI as a user would, against the test's ledger, broker and config."""
    done = subprocess.run(
        [sys.executable, "-m", "llmq.cli", *args],
        env=rig.env,
        cwd=rig.tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_batch(rig, client: Client, source: Path, **submit: Any) -> uuid.UUID:  # type: ignore[no-untyped-def]
    batch_id = client.submit(source, **submit)
    counts = wait_settled(rig.engine, batch_id, timeout_s=120, on_timeout=rig.logs)
    assert counts == {"succeeded": sum(1 for _ in source.open())}, counts
    return batch_id


def texts(client: Client, batch_id: uuid.UUID) -> dict[str, str]:
    return {r["custom_id"]: r["response"]["text"] for r in client.iter_results(batch_id)}


def test_resubmitted_batch_costs_nothing_and_touches_no_provider(rig, sim) -> None:  # type: ignore[no-untyped-def]
    config = rig.configure([model("m", "openai", is_default=True, temperature=0, **PRICED)])
    rig.start(concurrency=4)
    source = write_jsonl(rig.tmp_path / "batch.jsonl", questions(N_JOBS))

    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        first = run_batch(rig, client, source)
        before = sim.stats()
        second = run_batch(rig, client, source)
        after = sim.stats()
        first_status, second_status = client.get_batch(first), client.get_batch(second)
        first_texts, second_texts = texts(client, first), texts(client, second)

    assert before["total_requests"] == N_JOBS
    assert after == before  # the simulator received nothing new
    assert second_texts == first_texts and len(second_texts) == N_JOBS
    assert first_status.cost_usd > 0 and first_status.cache_hits == 0
    assert second_status.cost_usd == 0
    assert (second_status.prompt_tokens, second_status.completion_tokens) == (0, 0)
    assert second_status.cache_hits == N_JOBS
    assert second_status.cache_saved_usd == first_status.cost_usd

    status = json.loads(llmq(rig, "status", str(second), "--json"))
    assert status["cache"] == {"hits": N_JOBS, "saved_usd": f"{first_status.cost_usd:.8f}"}
    assert status["cost_usd"] == "0.00000000"

    usage = json.loads(llmq(rig, "usage", "--json", "--since", "1h"))
    total = usage["total"]
    assert total["cache_hits"] == N_JOBS and total["succeeded"] == N_JOBS
    assert Decimal(total["saved_usd"]) == first_status.cost_usd
    assert Decimal(total["cost_usd"]) == first_status.cost_usd  # paid once, for the first batch
    [row] = usage["rows"]  # the hits count where the answers came from
    assert (row["provider"], row["model"], row["cache_hits"]) == ("openai", "m", N_JOBS)


def test_only_deterministic_cacheable_jobs_are_served_from_the_cache(rig, sim) -> None:  # type: ignore[no-untyped-def]
    # the deployment runs at the default temperature 0.7: lines must ask for 0 themselves
    config = rig.configure([model("m", "openai", is_default=True, **PRICED)])
    rig.start(concurrency=4)
    lines = [
        {"custom_id": "cold", "prompt": "Capital of France?", "temperature": 0},
        {"custom_id": "warm", "prompt": "Write a poem.", "temperature": 0.7},
        {"custom_id": "default", "prompt": "Write a limerick."},  # deployment's 0.7
        {"custom_id": "opted-out", "prompt": "Capital of Spain?", "temperature": 0, "cache": False},
    ]
    source = write_jsonl(rig.tmp_path / "mixed.jsonl", lines)

    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        run_batch(rig, client, source)
        assert sim.stats()["total_requests"] == 4
        again = run_batch(rig, client, source)
        # only "cold" was answered from the cache
        assert sim.stats()["total_requests"] == 4 + 3
        assert client.get_batch(again).cache_hits == 1

        # `llmq submit --no-cache` bypasses it for the whole batch
        out = llmq(rig, "submit", str(source), "--no-cache", "--json")
        no_cache = uuid.UUID(json.loads(out)["batch_id"])
        wait_settled(rig.engine, no_cache, timeout_s=120, on_timeout=rig.logs)
        assert sim.stats()["total_requests"] == 4 + 3 + 4
        status = client.get_batch(no_cache)
    assert status.cache_hits == 0 and status.counts["succeeded"] == 4 and status.cost_usd > 0


def test_expired_entry_is_not_served(rig, sim) -> None:  # type: ignore[no-untyped-def]
    ttl_s = 1
    config = rig.configure(
        [model("m", "openai", is_default=True, temperature=0, **PRICED)], cache={"ttl_s": ttl_s}
    )
    rig.start(concurrency=2)
    source = write_jsonl(rig.tmp_path / "small.jsonl", questions(3))

    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        run_batch(rig, client, source)
        time.sleep(ttl_s + 0.5)  # let every entry expire (a wait, not a timed assertion)
        again = run_batch(rig, client, source)
        status = client.get_batch(again)

    assert sim.stats()["total_requests"] == 6
    assert status.cache_hits == 0 and status.cost_usd > 0


def test_the_cache_never_answers_one_tenant_with_another_tenants_reply(rig, sim) -> None:  # type: ignore[no-untyped-def]
    """Issue 20 item 13: tenant scope by default; `cache: {scope: global}` opts in to sharing."""
    n = 5
    config = rig.configure([model("m", "openai", is_default=True, temperature=0, **PRICED)])
    rig.start(concurrency=4)
    source = write_jsonl(rig.tmp_path / "batch.jsonl", questions(n))

    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        run_batch(rig, client, source, tenant="team-a")
        after_a = sim.stats()["total_requests"]
        other = run_batch(rig, client, source, tenant="team-b")
        after_b = sim.stats()["total_requests"]
        again = run_batch(rig, client, source, tenant="team-b")
        other_status, again_status = client.get_batch(other), client.get_batch(again)

    assert after_a == n and after_b == 2 * n  # team-b asked the provider itself
    assert other_status.cache_hits == 0
    assert again_status.cache_hits == n  # its own earlier replies do serve it
    assert sim.stats()["total_requests"] == 2 * n


def test_global_scope_shares_the_cache_across_tenants(rig, sim) -> None:  # type: ignore[no-untyped-def]
    n = 4
    config = rig.configure(
        [model("m", "openai", is_default=True, temperature=0, **PRICED)],
        cache={"scope": "global"},
    )
    rig.start(concurrency=4)
    source = write_jsonl(rig.tmp_path / "batch.jsonl", questions(n))
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        run_batch(rig, client, source, tenant="team-a")
        shared = run_batch(rig, client, source, tenant="team-b")
        assert client.get_batch(shared).cache_hits == n
    assert sim.stats()["total_requests"] == n
