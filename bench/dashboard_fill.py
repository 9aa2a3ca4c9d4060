"""A large synthetic ledger for the dashboard scenario, written by Postgres itself.

Owns: the INSERT ... SELECT generate_series statements that fill batches, jobs and attempts
(and a few quota windows) in seconds, without a worker or the simulator: the scenario measures
reads, so the rows only need the shape and spread the real pipeline gives them. Must not: run
against anything but the bench's throwaway database.

Shape, for `attempts` rows in all: jobs = attempts / 1.25 (every fourth job failed once on
its first deployment and succeeded on a second one), `jobs_per_batch` jobs per batch, batches
spread evenly over the last `days` days and over `tenants` tenants, attempts started within
an hour of their batch, providers and models taken round-robin from the lists given.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FillShape:
    attempts: int = 1_000_000
    jobs_per_batch: int = 4_000
    tenants: int = 5
    days: int = 60
    providers: tuple[str, ...] = ("p1", "p2", "p3")
    models: tuple[str, ...] = ("m",)

    @property
    def jobs(self) -> int:
        return self.attempts * 4 // 5

    @property
    def batches(self) -> int:
        return max(1, -(-self.jobs // self.jobs_per_batch))


def _array(values: tuple[str, ...]) -> str:
    return "(ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "])"


def fill_statements(s: FillShape) -> list[str]:
    """The statements, in order; each one is a single INSERT ... SELECT."""
    provs, models = _array(s.providers), _array(s.models)
    batch_age = f"(interval '1 day' * {s.days}) * ({s.batches} - b) / {s.batches}"
    # Only the jobs filled here: in a full bench run other scenarios' jobs share the ledger.
    ours = f"batch_id IN (SELECT md5('batch' || b)::uuid FROM generate_series(1, {s.batches}) AS b)"
    return [
        f"""INSERT INTO batches (id, name, tenant, state, total_jobs, default_model, nightly,
                use_cache, source, created_at, finished_at)
            SELECT md5('batch' || b)::uuid, 'bench-' || b, 'tenant-' || (b % {s.tenants}),
                   CASE WHEN b % 10 = 0 THEN 'active' ELSE 'done' END,
                   {s.jobs_per_batch}, {models}[1], false, true, NULL,
                   now() - {batch_age}, now() - {batch_age} + interval '1 hour'
            FROM generate_series(1, {s.batches}) AS b""",
        f"""INSERT INTO jobs (id, batch_id, line_no, custom_id, tenant, model, spec, state,
                attempts, created_at, finished_at, provider, served_model, prompt_tokens,
                completion_tokens, cost_usd)
            SELECT md5('job' || j)::uuid, md5('batch' || b)::uuid, j, 'line-' || j,
                   'tenant-' || (b % {s.tenants}), {models}[1], '{{}}'::json,
                   CASE WHEN b % 10 = 0 AND j % 3 = 0 THEN 'queued' ELSE 'succeeded' END,
                   CASE WHEN j % 4 = 0 THEN 2 ELSE 1 END,
                   now() - {batch_age}, now() - {batch_age} + interval '1 hour',
                   {provs}[1 + j % {len(s.providers)}], {models}[1 + j % {len(s.models)}],
                   100 + j % 400, 20 + j % 200, (120 + j % 600) * 0.0000006
            FROM (SELECT j, 1 + (j - 1) / {s.jobs_per_batch} AS b
                  FROM generate_series(1, {s.jobs}) AS j) AS g""",
        # first attempts: every fourth one failed (429 or 500) and waited before its retry
        f"""INSERT INTO attempts (job_id, attempt_no, tenant, provider, model, deployment, outcome,
                http_status, error_kind, error_message, started_at, latency_ms, waited_ms,
                prompt_tokens, completion_tokens, cost_usd, reserved_usd, reserved_tokens)
            SELECT id, 1, tenant, {provs}[1 + (line_no + 1) % {len(s.providers)}], served_model,
                   {provs}[1 + (line_no + 1) % {len(s.providers)}] || '/' || served_model,
                   CASE WHEN line_no % 4 = 0 THEN 'failed' ELSE 'succeeded' END,
                   CASE WHEN line_no % 4 = 0 THEN (CASE WHEN line_no % 8 = 0 THEN 429 ELSE 500
                        END) ELSE 200 END,
                   CASE WHEN line_no % 8 = 0 THEN 'rate_limited'
                        WHEN line_no % 4 = 0 THEN 'provider_unavailable' END,
                   CASE WHEN line_no % 4 = 0 THEN 'simulated failure' END,
                   created_at + (line_no % 3600) * interval '1 second', 200 + line_no % 1800,
                   0, prompt_tokens, CASE WHEN line_no % 4 = 0 THEN 0 ELSE completion_tokens END,
                   CASE WHEN line_no % 4 = 0 THEN 0 ELSE cost_usd END, 0, 0
            FROM jobs WHERE {ours}""",
        f"""INSERT INTO attempts (job_id, attempt_no, tenant, provider, model, deployment, outcome,
                http_status, started_at, latency_ms, waited_ms, prompt_tokens,
                completion_tokens, cost_usd, reserved_usd, reserved_tokens)
            SELECT id, 2, tenant, provider, served_model, provider || '/' || served_model, 'succeeded',
                   200, created_at + (line_no % 3600 + 5) * interval '1 second',
                   300 + line_no % 2500, 1000 + line_no % 4000, prompt_tokens,
                   completion_tokens, cost_usd, 0, 0
            FROM jobs WHERE line_no % 4 = 0 AND {ours}""",
        f"""INSERT INTO quota_limits (tenant, period, limit_usd, limit_tokens, updated_at)
            SELECT 'tenant-' || t, p, 500, NULL, now()
            FROM generate_series(0, {s.tenants - 1}) AS t, unnest(ARRAY['day', 'month']) AS p""",
        "ANALYZE batches",
        "ANALYZE jobs",
        "ANALYZE attempts",
    ]
