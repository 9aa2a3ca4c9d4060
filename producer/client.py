"""The producer's Python API: submit a batch, poll it, read its results, cancel and resume it.

Owns: `Client`, the one object the CLI, tests and other programs use to talk to the ledger and
the broker as a producer. Must not: import provider code or write SQL (the ledger's
`batch_*_repo` modules do); it never calls an LLM.

Example::

    with Client() as client:                       # LLMQ_DATABASE_URL / LLMQ_BROKER_URL
        batch_id = client.submit("backlog.jsonl", tenant="team-a", max_cost_usd="5")
        status = client.wait(batch_id)             # BatchStatus once nothing can progress
        for line in client.iter_results(batch_id): # input order, streamed
            print(line["custom_id"], line["status"])

Money in `BatchStatus` is `Decimal`; the JSON forms (`BatchStatus.to_json`, result lines) carry
it as strings with exactly 8 decimal places.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import cache_key as cache
from core import jsonl
from core.durations import parse_duration
from core.ledger import batch_control_repo, batch_reads_repo, batch_submit_repo
from core.ledger.batch_control_repo import CancelResult
from core.ledger.batch_reads_repo import BatchStatus, JobTimeline
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import make_engine, make_sessionmaker, session_scope
from core.money import USD_QUANTUM
from producer.submit import (
    EnqueueFailed,
    SubmitResult,
    publish_or_mark,
    republish_unfinished,
    store_and_enqueue,
    store_stream_and_enqueue,
)
from schemas.config import LLMConfig
from schemas.job import JobSpec
from schemas.settings import Settings, load_settings

__all__ = [
    "BatchStatus",
    "CancelResult",
    "Client",
    "EnqueueFailed",
    "InputError",
    "JobTimeline",
    "NotFound",
    "SubmitResult",
]

InputError = jsonl.InputError
ProgressCallback = Callable[[BatchStatus], None]


class NotFound(LookupError):
    """No batch (or job) matches the given id."""


class Client:
    """Producer-side access to llmq.

    Args:
        database_url: the ledger; defaults to LLMQ_DATABASE_URL.
        broker_url: the Celery broker; defaults to LLMQ_BROKER_URL.
        config: the `llm_config.yaml` model; by default loaded on first need (submit only)
            with `core.config_file.load_config` from LLMQ_CONFIG / ./llm_config.yaml.
        env: the environment to read LLMQ_* from (default `os.environ`).
        capabilities: what a deployment can honour (`core.jsonl.Capabilities`; the CLI passes
            the provider registry's resolver). Given, submit rejects a line whose features
            (JSON output, tools, images, stop, ...) no deployment of its model or of its
            fallbacks honours: ``line N: no deployment of MODEL supports FEATURE``. None
            skips that check (the workers' routing still never sends a job where it cannot
            be served).

    Close it (or use it as a context manager) to release database connections.
    """

    def __init__(
        self,
        database_url: str | None = None,
        broker_url: str | None = None,
        config: LLMConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        capabilities: jsonl.Capabilities | None = None,
    ) -> None:
        self._env = os.environ if env is None else env
        settings: Settings = load_settings(self._env)
        self.database_url = database_url or settings.database_url
        self.broker_url = broker_url or settings.broker_url
        self._config_path = settings.config_path
        self._config = config
        self.capabilities = capabilities
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Dispose of the database engine (idempotent)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = self._sessions = None

    @property
    def config(self) -> LLMConfig:
        if self._config is None:
            from core.config_file import load_config

            self._config = load_config(self._config_path, self._env)
        return self._config

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            self._engine = make_engine(self.database_url, pool_size=4)
            self._sessions = make_sessionmaker(self._engine)
        return self._sessions

    # --- submit ---------------------------------------------------------------------------

    def submit(
        self,
        path_or_specs: str | Path | Sequence[JobSpec],
        name: str | None = None,
        tenant: str | None = None,
        model: str | None = None,
        max_cost_usd: Decimal | str | float | None = None,
        nightly: bool = False,
        use_cache: bool = True,
    ) -> uuid.UUID:
        """Validate every line, store the batch and its jobs in one transaction, enqueue them.

        Args:
            path_or_specs: a JSONL file (native or OpenAI Batch lines) or JobSpecs (built
                with `features=schemas.request.Features(...)` for response_format, tools,
                sampling; checked by the same rules as a native line, spec N = line N).
            name: a label for people.
            tenant: whose quota pays; default `quota.default_tenant` from the config.
            model: the model for lines that name none (else the config's default).
            max_cost_usd: a per-batch budget in USD, enforced by reservation.
            nightly: store the jobs as `deferred` for the nightly run instead of queueing.
            use_cache: False = never answer these jobs from the response cache.

        Returns:
            The batch id.

        Raises:
            InputError: a bad line (all reported, capped); nothing was written or enqueued.
            ValueError: a bad option (tenant, name, max_cost_usd).
            EnqueueFailed: the batch IS stored; the sweeper enqueues what was not sent.
        """
        return self.submit_detailed(
            path_or_specs, name, tenant, model, max_cost_usd, nightly, use_cache
        ).batch_id

    def submit_detailed(  # noqa: PLR0913 - one parameter per submit option
        self,
        path_or_specs: str | Path | Sequence[JobSpec],
        name: str | None = None,
        tenant: str | None = None,
        model: str | None = None,
        max_cost_usd: Decimal | str | float | None = None,
        nightly: bool = False,
        use_cache: bool = True,
        *,
        enqueue: bool = True,
        validated_jobs: int | None = None,
        deadline: str | None = None,
    ) -> SubmitResult:
        """`submit`, returning job count, enqueued count and per-phase timings in seconds.

        For a file only: `enqueue=False` stores the batch and publishes nothing (the caller
        feeds the ids itself: the embedded run, `llmq.embedded_feed`); `validated_jobs` says
        the caller already ran `core.jsonl.validate_file` on it and found that many job lines,
        so the first pass is skipped (the insert pass still checks every line and the count,
        and rolls back on any difference). `deadline` ("24h", any duration): the jobs may wait
        for a provider batch lane at its batch price until then (issue 18)."""
        due = datetime.now(UTC) + parse_duration(deadline) if deadline is not None else None
        batch = NewBatch(
            tenant=_check_len("tenant", tenant or self.config.quota.default_tenant, 100),
            name=_check_len("name", name, 200) if name else None,
            default_model=model,
            max_cost_usd=_parse_usd(max_cost_usd),
            nightly=nightly,
            use_cache=use_cache,
            deadline=due,
        )
        t0 = time.perf_counter()
        if isinstance(path_or_specs, str | Path):
            path = Path(path_or_specs)
            return self._submit_file(path, batch, model, t0, enqueue, validated_jobs)
        specs = jsonl.check_specs(path_or_specs, self.config, model, capabilities=self.capabilities)
        keys = cache.keys_for(specs, self.config, batch.use_cache, tenant=batch.tenant)
        parse_s = time.perf_counter() - t0
        result = store_and_enqueue(self.sessions, self.broker_url, specs, batch, cache_keys=keys)
        result.timings = {"parse_s": parse_s, **result.timings}
        return result

    def _submit_file(  # noqa: PLR0913 - submit_detailed's file branch
        self,
        path: Path,
        batch: NewBatch,
        model: str | None,
        t0: float,
        enqueue: bool,
        validated_jobs: int | None,
    ) -> SubmitResult:
        """One streaming pass, memory flat in the file's length: lines are validated as they
        are read and inserted chunk by chunk into ONE transaction; a bad line anywhere (all of
        them reported) rolls the whole transaction back, so nothing is half-submitted. A caller
        that validated already (`llmq run`, before it creates its ledger) passes the count."""
        batch = replace(batch, source=str(path.resolve()))
        total = validated_jobs
        parse_s = time.perf_counter() - t0
        specs = jsonl.iter_file(path, self.config, model, capabilities=self.capabilities)
        result = store_stream_and_enqueue(
            self.sessions,
            self.broker_url,
            specs,
            total,
            batch,
            lambda chunk: cache.keys_for(chunk, self.config, batch.use_cache, tenant=batch.tenant),
            publish=enqueue,
        )
        result.timings = {"parse_s": parse_s, **result.timings}
        return result

    def continue_file(self, path: str | Path, *, enqueue: bool = True) -> SubmitResult:
        """Continue the newest batch submitted from `path` (an interrupted `llmq run`): its
        queued and running jobs are published again; finished and parked ones stay as they
        are. Nothing is parsed or inserted. Raises NotFound when no batch came from `path`.
        `enqueue=False` publishes nothing (the caller feeds them, as in `submit_detailed`).
        """
        source = str(Path(path).resolve())
        with session_scope(self.sessions) as session:
            bid = batch_submit_repo.latest_batch_for_source(session, source)
        if bid is None:
            raise NotFound(f"no earlier run of {path} in this ledger: run it without --resume")
        t0 = time.perf_counter()
        sent = republish_unfinished(self.sessions, self.broker_url, bid) if enqueue else 0
        total = self.get_batch(bid).total
        return SubmitResult(bid, total, sent, "queued", {"enqueue_s": time.perf_counter() - t0})

    # --- poll -----------------------------------------------------------------------------

    def find_batch(self, batch_id: uuid.UUID | str) -> uuid.UUID:
        """Resolve a full batch id or a unique prefix of one. Raises NotFound."""
        with session_scope(self.sessions) as session:
            found = batch_reads_repo.find_batch_id(session, str(batch_id))
        if found is None:
            raise NotFound(f"no batch matches {str(batch_id)!r}")
        return found

    def get_batch(self, batch_id: uuid.UUID | str) -> BatchStatus:
        """Counts by state, tokens, cost, per-provider figures and cache savings."""
        bid = self.find_batch(batch_id)
        with session_scope(self.sessions) as session:
            status = batch_reads_repo.batch_status(session, bid)
        if status is None:
            raise NotFound(f"no batch {bid}")
        return status

    def iter_results(
        self, batch_id: uuid.UUID | str, chunk: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """One result dict per input line, in input order, streamed from the ledger:
        ``{"custom_id", "job_id", "status", "response", "usage", "cost_usd", "attempts",
        "error"}`` (see README / `llmq results`)."""
        bid = self.find_batch(batch_id)
        with session_scope(self.sessions) as session:
            yield from batch_reads_repo.iter_results(session, bid, chunk)

    def job(self, job_id: uuid.UUID | str) -> JobTimeline:
        """One job and its attempts in order (`llmq job`). Raises NotFound."""
        try:
            jid = uuid.UUID(str(job_id))
        except ValueError as exc:
            raise NotFound(f"{str(job_id)!r} is not a job id") from exc
        with session_scope(self.sessions) as session:
            timeline = batch_reads_repo.job_timeline(session, jid)
        if timeline is None:
            raise NotFound(f"no job {jid}")
        return timeline

    def wait(
        self,
        batch_id: uuid.UUID | str,
        progress: ProgressCallback | None = None,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> BatchStatus:
        """Poll until no job can make progress: all terminal, or only parked/deferred left.

        Args:
            progress: called with each polled status (e.g. `producer.progress.BatchProgress`).
            poll_s: seconds between polls.
            timeout_s: give up after this many seconds and return the last status.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            status = self.get_batch(batch_id)
            if progress is not None:
                progress(status)
            if status.settled or (deadline is not None and time.monotonic() >= deadline):
                return status
            time.sleep(poll_s)

    # --- change ---------------------------------------------------------------------------

    def cancel(self, batch_id: uuid.UUID | str) -> CancelResult:
        """Queued, deferred and parked jobs become cancelled; running ones finish."""
        bid = self.find_batch(batch_id)
        with session_scope(self.sessions) as session:
            result = batch_control_repo.cancel_batch(session, bid, datetime.now(UTC))
        if result is None:
            raise NotFound(f"no batch {bid}")
        return result

    def resume(self, batch_id: uuid.UUID | str) -> int:
        """Parked (quota_exceeded) and deferred jobs go back to queued and are enqueued.

        Returns the number of jobs re-queued. Raises EnqueueFailed like `submit`.
        """
        bid = self.find_batch(batch_id)
        with session_scope(self.sessions) as session:
            ids = batch_control_repo.resume_batch(session, bid, datetime.now(UTC))
        if ids is None:
            raise NotFound(f"no batch {bid}")
        if ids:
            publish_or_mark(self.sessions, self.broker_url, bid, ids)
        return len(ids)


def _check_len(what: str, value: str | None, limit: int) -> str:
    if value is None or not value.strip() or len(value) > limit:
        raise ValueError(f"{what} must be 1 to {limit} characters")
    return value


def _parse_usd(value: Decimal | str | float | None) -> Decimal | None:
    if value is None:
        return None
    try:
        usd = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"max_cost_usd: {value!r} is not a number") from exc
    if not usd.is_finite() or usd >= Decimal("1e10") or usd.quantize(USD_QUANTUM) <= 0:
        raise ValueError(f"max_cost_usd must be a positive amount in USD, got {value}")
    return usd.quantize(USD_QUANTUM)
