"""One small batch through a real worker while Flower and `llmq metrics` watch, then:

* Flower's /api/tasks lists every task as `llmq.process_job` with the job id as its only
  argument (and refuses the API without credentials);
* the scraped counters equal the ledger (SQL) and `llmq usage`'s report;
* no configured key appears in the worker's log, a `pg_dump --data-only`, Flower's API output,
  the metrics text or any of the processes' logs, and no prompt text outside Postgres;
* the worker wrote one `provider_call` line per provider call.

The config makes the cheapest deployment fail auth (a `bad` key the simulated OpenAI echoes
back in its error body, like the real one) and one provider fail 25 % of calls, so fallbacks,
retries and error paths all run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from helpers.jobs import states
from helpers.llm_config import load_test_config, model, write_llm_config
from helpers.worker import WorkerProcess, worker_env
from sqlalchemy import create_engine, text

from simulator.config import SimConfig
from simulator.server import start_in_thread
from tests.conftest import REDIS_TEST_URL_2

from .test_monitor_cli import free_port, parse, scrape

BROKER = REDIS_TEST_URL_2  # a db of our own: other suites flush the first one
AUTH = ("watcher", "flower-SECRET-pw-42")
KEYS = {
    "openai": "bad-openai-SECRET-111",  # 401, echoed back in the error body
    "anthropic": "sk-ant-test-SECRET-456",
    "google": "AIza-test-SECRET-789",
    "cohere": "co-test-SECRET-321",
    "huggingface": "hf_test_SECRET_654",
    "local": "sk-test-SECRET-123",
}
N_JOBS = 12
PROMPT = "PROMPT-OTTER-{i}: describe how river otters hold hands while sleeping"
TERMINAL = {"succeeded", "failed", "cancelled", "quota_exceeded"}


@dataclass
class Run:
    pg_url: str
    batch_id: Any
    job_ids: list[str]
    worker: WorkerProcess
    flower_tasks: dict[str, Any]
    flower_ui_rows: list[dict[str, Any]]
    flower_text: str
    metrics_text: str
    logs: dict[str, str]


def _wait(pred, timeout_s: float, what: str) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} not reached in {timeout_s}s")


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=log.parent)  # fmt: skip


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def _flower_tasks(port: int) -> dict[str, Any]:
    resp = httpx.get(f"http://127.0.0.1:{port}/api/tasks", auth=AUTH, timeout=5)
    resp.raise_for_status()
    return resp.json()


@pytest.fixture(scope="module")
def run(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("monitoring-e2e")
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE attempts, jobs, batches, budget_windows, quota_limits CASCADE"))
    try:
        redis.Redis.from_url(BROKER).flushdb()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable: {exc}")
    sim = start_in_thread(SimConfig(seed=7, providers={"anthropic": {"rate_500": 0.25}}))
    models = [
        model(
            "chat", "openai", model_id="gpt-x", input_cost_per_mtok=0.1, output_cost_per_mtok=0.1
        ),
        model(
            "chat", "anthropic", model_id="claude-x", input_cost_per_mtok=1, output_cost_per_mtok=2
        ),
        model("chat", "google", model_id="gemini-x", input_cost_per_mtok=3, output_cost_per_mtok=4),
    ]
    # circuit_open_s: keep the bad deployment's circuit open until the scrape
    cfg = write_llm_config(
        tmp / "llm_config.yaml", sim.url, models, keys=KEYS, routing={"circuit_open_s": 120}
    )
    env = worker_env(pg_url, BROKER, cfg, LLMQ_LOG_JSON="1")
    flower_port, metrics_port = free_port(), free_port()
    cli = [sys.executable, "-m", "llmq.cli"]
    flower = _spawn([*cli, "flower", "--port", str(flower_port), "--basic-auth", ":".join(AUTH)],
                    env, tmp / "flower.log")  # fmt: skip
    metrics = _spawn([*cli, "metrics", "--port", str(metrics_port)], env, tmp / "metrics.log")
    worker = WorkerProcess(env, concurrency=4, log_dir=tmp)
    try:
        worker.start()
        _wait(lambda: _ok(f"http://127.0.0.1:{flower_port}/healthcheck"), 30, "flower up")
        batch_id, ids = _submit(tmp, pg_url, cfg)
        done = lambda: sum(n for s, n in states(engine, batch_id).items() if s in TERMINAL)  # noqa: E731
        try:
            _wait(lambda: done() == N_JOBS, 60, "batch finished")
        except TimeoutError as exc:
            raise TimeoutError(
                f"{exc}: {states(engine, batch_id)}\n{worker.logs()[-4000:]}"
            ) from None
        # Flower learns from events asynchronously: wait until it has seen every job finish
        # (a chunk task counts for each id it carries).
        _wait(
            lambda: (
                sum(
                    len(_ids_of(t.get("args")))
                    for t in _flower_tasks(flower_port).values()
                    if t["state"] == "SUCCESS"
                )
                >= N_JOBS
            ),
            20,
            "flower saw all tasks",
        )
        tasks = _flower_tasks(flower_port)
        ui = httpx.get(
            f"http://127.0.0.1:{flower_port}/tasks/datatable",
            params={"draw": 1, "start": 0, "length": 1000, "order[0][column]": 0,
                    "columns[0][data]": "name"},
            auth=AUTH, timeout=5,
        )  # fmt: skip
        workers = httpx.get(f"http://127.0.0.1:{flower_port}/api/workers", auth=AUTH, timeout=5)
        metrics_text = scrape(f"http://127.0.0.1:{metrics_port}/metrics", metrics)
        unauth = httpx.get(f"http://127.0.0.1:{flower_port}/api/tasks", timeout=5)
        assert unauth.status_code == 401
    finally:
        worker.stop()
        for proc in (flower, metrics):
            _stop(proc)
        sim.stop()
        engine.dispose()
    logs = {p.name: p.read_text(errors="replace") for p in tmp.glob("*.log")}
    yield Run(
        pg_url, batch_id, [str(i) for i in ids], worker, tasks, ui.json()["data"],
        json.dumps(tasks) + ui.text + workers.text, metrics_text, logs,
    )  # fmt: skip


def _submit(tmp: Path, pg_url: str, cfg: Path) -> tuple[Any, list[Any]]:
    """Submit the batch the way users do (JSONL through the producer client)."""
    from producer.client import Client

    path = tmp / "batch.jsonl"
    lines = [{"custom_id": f"line-{i}", "prompt": PROMPT.format(i=i)} for i in range(N_JOBS)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with Client(pg_url, BROKER, load_test_config(cfg)) as client:
        batch_id = client.submit(path, model="chat", use_cache=False)
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        sql = text("SELECT id FROM jobs WHERE batch_id = :b")
        ids = list(conn.execute(sql, {"b": batch_id}).scalars())
    engine.dispose()
    return batch_id, ids


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _ids_of(args: object) -> list[str]:
    """The job ids a task's args show: one for `llmq.process_job`, a chunk's for
    `llmq.process_chunk` (issue 21)."""
    text = str(args)
    return [part.strip("()[]',\" ") for part in text.split(",") if part.strip("()[]',\" ")]


OUR_TASKS = {"llmq.process_job", "llmq.process_chunk"}


def test_flower_lists_tasks_with_ids_only(run: Run) -> None:
    ours = [t for t in run.flower_tasks.values() if t.get("name") in OUR_TASKS]
    # A task whose first event Flower missed (it connected late) has no name yet; every
    # task it does name is ours, and every task, named or not, carries job ids only.
    assert {t.get("name") for t in run.flower_tasks.values()} <= {*OUR_TASKS, None}
    for t in run.flower_tasks.values():
        if t.get("args") is not None:
            assert set(_ids_of(t["args"])) <= set(run.job_ids), t["args"]
    seen = set()
    for t in ours:
        ids = _ids_of(t["args"])
        assert ids and set(ids) <= set(run.job_ids), t["args"]
        assert t["kwargs"] in ("{}", None, "")
        seen.update(ids)
    assert seen == set(run.job_ids)  # every job, in a chunk or its own message (retries)
    # Flower knows which worker ran each task (from the worker's events)
    ran = [t for t in ours if t["state"] in ("SUCCESS", "FAILURE", "STARTED", "RETRY")]
    assert ran and all(str(t.get("worker", "")).startswith("w1@") for t in ran)


def test_flower_ui_shows_ids_only(run: Run) -> None:
    """The UI's table goes through workers/flowerconfig.py `format_task`."""
    assert run.flower_ui_rows
    assert any(row["name"] in OUR_TASKS for row in run.flower_ui_rows)
    for row in run.flower_ui_rows:
        assert row["name"] in (*OUR_TASKS, None)  # None: first event missed
        if row["args"] is None:
            continue
        assert set(_ids_of(row["args"])) <= set(run.job_ids), row["args"]


def test_metrics_equal_the_ledger(run: Run) -> None:
    from sqlalchemy.orm import Session

    from core.ledger.usage_repo import usage_report

    samples = parse(run.metrics_text)
    engine = create_engine(run.pg_url)
    with engine.connect() as conn:
        calls = conn.execute(
            text(
                "SELECT provider, model, outcome, count(*) FROM attempts "
                "WHERE outcome NOT IN ('started', 'cache_hit') GROUP BY 1, 2, 3"
            )
        ).all()
        jobs = dict(conn.execute(text("SELECT state, count(*) FROM jobs GROUP BY 1")).all())
    with Session(engine) as session:
        usage = usage_report(session, since=run_since(), by=("provider", "model"))
    engine.dispose()
    assert calls
    for provider, mdl, outcome, n in calls:
        key = f'llmq_provider_requests_total{{model="{mdl}",outcome="{outcome}",provider="{provider}"}}'
        assert samples[key] == n
    for u in usage:  # `llmq usage` and the metrics agree on tokens and money
        lab = f'model="{u.group["model"]}",provider="{u.group["provider"]}"'
        assert samples[f'llmq_tokens_total{{kind="prompt",{lab}}}'] == u.prompt_tokens
        assert samples[f'llmq_tokens_total{{kind="completion",{lab}}}'] == u.completion_tokens
        assert samples[f"llmq_cost_usd_total{{{lab}}}"] == pytest.approx(float(u.cost_usd))
    for state, n in jobs.items():
        assert samples[f'llmq_jobs{{state="{state}"}}'] == n
    # the bad OpenAI key made every job fall back at least once, and opened its circuit
    assert sum(v for k, v in samples.items() if k.startswith("llmq_fallbacks_total")) >= 1
    assert samples['llmq_circuit_state{deployment="openai/gpt-x",state="open"}'] == 1


def run_since() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=1)


def _pg_dump(pg_url: str) -> str:
    dbname = pg_url.rsplit("/", 1)[1]
    out = subprocess.run(
        ["pg_dump", "--data-only", f"--dbname=postgresql://127.0.0.1/{dbname}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def test_no_secret_anywhere(run: Run) -> None:
    dump = _pg_dump(run.pg_url)
    assert "PROMPT-OTTER-0" in dump  # the dump is real: prompts do live in Postgres
    places = {"pg_dump": dump, "flower api": run.flower_text, "metrics": run.metrics_text}
    places.update(run.logs)
    secrets = [*KEYS.values(), AUTH[1]]
    leaks = [(where, s) for where, body in places.items() for s in secrets if s in body]
    assert not leaks, leaks


def test_no_prompt_text_outside_postgres(run: Run) -> None:
    places = {"flower api": run.flower_text, "metrics": run.metrics_text, **run.logs}
    leaks = [where for where, body in places.items() if "PROMPT-OTTER" in body or "otters" in body]
    assert not leaks, leaks


def test_one_provider_call_line_per_call(run: Run) -> None:
    engine = create_engine(run.pg_url)
    with engine.connect() as conn:
        n_calls = conn.execute(
            text("SELECT count(*) FROM attempts WHERE outcome NOT IN ('started', 'cache_hit')")
        ).scalar_one()
    engine.dispose()
    lines = [json.loads(line) for line in run.worker.logs().splitlines() if line.startswith("{")]
    calls = [d for d in lines if d.get("msg") == "provider_call"]
    assert len(calls) == n_calls, "workers.pipeline must call log_provider_call once per call"
    for d in calls:
        assert d["job_id"] in run.job_ids and d["batch_id"] == str(run.batch_id)
        assert {
            "provider",
            "model",
            "status",
            "latency_ms",
            "prompt_tokens",
            "cost_usd",
        } <= d.keys()
    assert any(d["status"] == 401 and d["error_kind"] == "auth_failed" for d in calls)
