"""Embeddings (issue 17): throughput of a large embedding backlog, and what a vector costs to
keep.

- throughput: `emb_texts` short distinct texts in lines of `emb_per_line` inputs (OpenAI Batch
  `/v1/embeddings` lines) through one provider (the simulator's OpenAI endpoint, 0 ms, its
  limits: 2,048 inputs per request, replies within the 10 MB reply bound) with
  `emb_dims`-long vectors; embeddings/s = texts / seconds from the first claim to the last
  finish, with the workers already running.
- storage: `emb_store_texts` texts at 1,536 dimensions; bytes per stored vector =
  `pg_column_size(job_vectors.data)` / vectors (float32: 6,144 B of payload each) and the
  table's whole size (heap, TOAST, index) / vectors; bytes per embedding attempt row (the
  attempt stays lean: the vectors are beside the job, not on the attempt).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from bench.params import Params
from bench.report import Figure, Report, goal_at_most
from bench.stack import SIM_KEY, Stack

NAME = "embeddings"


def write_lines(path: Path, texts: int, per_line: int, model: str, tag: str) -> int:
    """`texts` distinct short texts in lines of `per_line`; returns the number of lines."""
    lines = 0
    with open(path, "w") as f:
        for start in range(0, texts, per_line):
            inputs = [f"{tag} item {i}: login times out" for i in range(start, start + per_line)]
            body = {"model": model, "input": inputs[: texts - start]}
            line = {"custom_id": f"{tag}-{start}", "method": "POST", "url": "/v1/embeddings"}
            f.write(json.dumps({**line, "body": body}) + "\n")
            lines += 1
    return lines


def write_config(stack: Stack, dims: tuple[int, ...]) -> None:
    """The stack's config plus one embedding model per length (`emb<dims>`)."""
    config = yaml.safe_load(stack.config_path.read_text())
    config["providers"]["openai"] = {"api_base": stack.sim_url + "/openai/v1", "api_key": SIM_KEY}
    for d in dims:
        config["models"].append(
            {
                "name": f"emb{d}",
                "provider": "openai",
                "model_id": "text-embedding-3-small",
                "id": f"openai/emb{d}",
                "mode": "embedding",
                "dimensions": d,
                "input_cost_per_mtok": "0.02",
                "output_cost_per_mtok": "0",
            }
        )
    stack.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


def run(stack: Stack, p: Params, report: Report) -> None:
    stack.configure_sim(latency_ms=0)
    write_config(stack, (p.emb_dims, 1536))
    procs = stack.start_workers(p.workers, p.emb_threads)
    try:
        # storage first: the table then holds only the 1,536-dim vectors it measures
        per_vector, table_per_vector, attempt_row = _storage(stack, p)
        rate, lines = _throughput(stack, p)
    finally:
        stack.stop(procs)
        stack.write_config()
        stack.flush_redis()
    report.add(
        Figure(
            NAME,
            f"embeddings/s, {p.emb_texts:,} texts x {p.emb_dims} dims",
            rate,
            "/s",
            note=f"{lines} lines of {p.emb_per_line} inputs; {p.workers} workers x "
            f"{p.emb_threads} threads; simulator 0 ms",
        ),
        Figure(
            NAME,
            "bytes per stored 1,536-dim vector",
            per_vector,
            "B",
            "≤ 6,200 B",
            goal_at_most(per_vector, 6200.0),
            note=f"float32 payload 6,144 B; whole table {table_per_vector:,.0f} B per vector",
        ),
        Figure(
            NAME,
            "bytes per embedding attempt row",
            attempt_row,
            "B",
            "≤ 300 B",
            goal_at_most(attempt_row, 300.0),
        ),
    )
    report.details[NAME] = {
        "texts": p.emb_texts,
        "lines": lines,
        "dims": p.emb_dims,
        "embeddings_per_s": rate,
        "bytes_per_1536_vector": per_vector,
        "table_bytes_per_1536_vector": table_per_vector,
        "attempt_row_bytes": attempt_row,
    }


def _throughput(stack: Stack, p: Params) -> tuple[float, int]:
    path = stack.workdir / "embeddings.jsonl"
    lines = write_lines(path, p.emb_texts, p.emb_per_line, f"emb{p.emb_dims}", "thr")
    batch_id, _, _ = stack.submit(path)
    stack.wait_finished(batch_id, lines, timeout_s=p.emb_timeout_s)
    (row,) = stack.sql(
        "SELECT count(*) FILTER (WHERE state = 'succeeded'), "
        "extract(epoch FROM max(j.finished_at) - min(a.started_at)) "
        "FROM jobs j JOIN attempts a ON a.job_id = j.id WHERE j.batch_id = :b",
        b=batch_id,
    )
    if row[0] != lines:
        raise RuntimeError(f"{lines - row[0]} of {lines} embedding jobs did not succeed")
    return p.emb_texts / float(row[1]), lines


def _storage(stack: Stack, p: Params) -> tuple[float, float, float]:
    path = stack.workdir / "embeddings-1536.jsonl"
    lines = write_lines(path, p.emb_store_texts, p.emb_per_line, "emb1536", "sto")
    batch_id, _, _ = stack.submit(path)
    stack.wait_finished(batch_id, lines, timeout_s=p.emb_timeout_s)
    time.sleep(0.5)
    (row,) = stack.sql(
        "SELECT sum(pg_column_size(v.data))::float / sum(v.count), sum(v.count) "
        "FROM job_vectors v JOIN jobs j ON j.id = v.job_id WHERE j.batch_id = :b",
        b=batch_id,
    )
    (total,) = stack.sql(
        "SELECT pg_total_relation_size('job_vectors')::float / sum(count) FROM job_vectors"
    )
    (attempt,) = stack.sql(
        "SELECT avg(pg_column_size(a.*)) FROM attempts a JOIN jobs j ON j.id = a.job_id "
        "WHERE j.spec::jsonb ? 'embedding'"
    )
    return float(row[0]), float(total[0]), float(attempt[0])
