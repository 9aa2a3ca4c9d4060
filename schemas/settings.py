"""Process settings from the environment: where the database, broker and config live.

Owns: the `Settings` model and `load_settings(env)`. Must not: read `os.environ` itself; the
caller passes the mapping (so tests and the embedded mode can build settings explicitly).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

DEFAULT_DATABASE_URL = "postgresql+psycopg://localhost/llmq"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"


class Settings(BaseModel):
    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    redis_url: str | None = None  # health/rate-limit state; defaults to the broker
    config_path: str | None = None  # LLMQ_CONFIG
    # a running job's lease, seconds, when no heartbeat renews it (embedded mode, a bare
    # run_job); a worker process with a heartbeat leases for heartbeat_lease_s instead
    lease_s: float = Field(default=300.0, gt=0)
    # worker heartbeats (workers/heartbeat.py): every heartbeat_s a worker process renews all
    # its running jobs' leases; a worker silent for heartbeat_missed beats loses its jobs
    heartbeat_s: float = Field(default=5.0, gt=0, le=300)
    heartbeat_missed: int = Field(default=3, ge=2, le=100)
    worker_concurrency: int = Field(default=48, gt=0)
    sweep_interval_s: float = Field(default=5.0, gt=0)
    requeue_after_s: float = Field(default=60.0, gt=0)  # queued with an older message: resend
    # the sweeper re-sends only while the broker queue is shorter than this (no duplicate flood)
    requeue_backlog: int = Field(default=1000, ge=0)
    visibility_timeout_s: int = Field(default=900, gt=0)
    log_json: bool = False
    embedded: bool = False

    @property
    def state_redis_url(self) -> str:
        return self.redis_url or self.broker_url

    @property
    def heartbeat_lease_s(self) -> float:
        """A heart-beating worker's lease: its jobs return to the queue this long after its
        last beat (`heartbeat_missed` beats)."""
        return self.heartbeat_s * self.heartbeat_missed


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build settings from an environment mapping (LLMQ_* variables)."""
    fields: dict[str, object] = {}
    names = {
        "database_url": "LLMQ_DATABASE_URL",
        "broker_url": "LLMQ_BROKER_URL",
        "redis_url": "LLMQ_REDIS_URL",
        "config_path": "LLMQ_CONFIG",
        "lease_s": "LLMQ_LEASE_S",
        "heartbeat_s": "LLMQ_HEARTBEAT_S",
        "heartbeat_missed": "LLMQ_HEARTBEAT_MISSED",
        "worker_concurrency": "LLMQ_CONCURRENCY",
        "sweep_interval_s": "LLMQ_SWEEP_INTERVAL_S",
        "requeue_after_s": "LLMQ_REQUEUE_AFTER_S",
        "requeue_backlog": "LLMQ_REQUEUE_BACKLOG",
        "visibility_timeout_s": "LLMQ_VISIBILITY_TIMEOUT_S",
    }
    for field, var in names.items():
        if env.get(var):
            fields[field] = env[var]
    fields["log_json"] = _flag(env.get("LLMQ_LOG_JSON"))
    return Settings.model_validate(fields)
