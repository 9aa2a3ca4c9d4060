"""The nightly backlog run: exactly once per (name, UTC date), in phases, resumable.

Modules (import each from where it lives; this package re-exports nothing):
  context  `NightlyContext` (what every phase gets: ledger, config, publish, clock) and
           `RunResult` (what a run returns).
  run      which night a run belongs to (`scheduled_date`), the order of the phases, the
           per-night lock, resuming a crashed run (`run_nightly`).
  inbox    the ingest phase: inbox *.jsonl files -> deferred batches.
  phases   the release, parked, retry, wait and report phases.
  report   the report itself, pure: figures in, a JSON-ready dict and Markdown out.
  task     the Celery task `llmq.nightly_run` that beat sends, and `send_run` for the CLI.

Must not (any module here): write SQL (core/ledger/nightly_repo.py, nightly_figures_repo.py
and batch_submit_repo do), process jobs (the normal workers do, from the ids published here), or
import provider code (`llmq nightly run --now` runs the night in the CLI's process).

Phases, in order; `nightly_runs.phase` names the next one, so a crashed run resumes there:
  ingest   each inbox *.jsonl -> a deferred batch under the nightly tenant, moved to
           processed/ (or, invalid, to rejected/ with its errors).
  release  the nightly tenant's day quota becomes `nightly.budget_usd`; every deferred job
           (inbox batches included) -> queued under the nightly tenant, and published.
  parked   quota_exceeded jobs whose window has reset -> queued under the nightly tenant.
  retry    failed jobs of a retryable kind (phases.RETRYABLE_KINDS), re-run at most
           `nightly.retry_failed_max` times over all nights, with a fresh attempt budget.
  wait     poll the ledger until none of the run's jobs is queued or running (parked ones
           count as settled), or until `wait_timeout_s`.
  report   figures from the ledger -> JSON and Markdown in `nightly.report_dir`, and the JSON
           in `nightly_runs.report`; the row becomes `done`.

Every phase is idempotent on its own (picking is by state, ingest by content hash), so a crash
between a phase's work and its phase update only repeats what is left of that phase.

Budget choice: the run processes everything as the nightly tenant (jobs it picks up are
re-assigned to that tenant, their previous tenant is kept in `nightly_run_jobs.from_tenant`)
and `budget_usd` becomes that tenant's *day* limit via `quota_limits_repo.set_limits`, so the usual
reservations stop the run's spend at the budget; what does not fit is parked as
quota_exceeded and shows in the report. A run that crosses midnight UTC starts a new day
window. `llmq usage` groups by a job's current tenant: a re-run failed job's earlier attempts
then show under the nightly tenant too (the budget windows keep them where they were booked).
"""
