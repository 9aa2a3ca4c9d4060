"""Settings of `llmq serve`, read from an environment mapping.

Owns: `ServeSettings` and `load_serve_settings(env)`. Must not: read `os.environ` itself.

- `LLMQ_SERVE_MAX_UPLOAD_BYTES`: largest accepted upload (default 200 MB); larger is 413.
- `LLMQ_SERVE_CHAT_TIMEOUT_S`: how long POST /v1/chat/completions waits for its job (600 s).
- `LLMQ_SERVE_DB_POOL`: database connections per serve process (8).
- `LLMQ_SERVE_POLL_CACHE_S`: how old a running batch's counts may be when polled (0.5 s; 0 =
  read the jobs on every poll). Many clients polling one batch then cost one query per period.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

DEFAULT_MAX_UPLOAD_BYTES = 200 * 1000 * 1000


class ServeSettings(BaseModel):
    max_upload_bytes: int = Field(default=DEFAULT_MAX_UPLOAD_BYTES, gt=0)  # bytes
    chat_timeout_s: float = Field(default=600.0, gt=0)  # seconds
    db_pool: int = Field(default=8, gt=0)  # connections
    poll_cache_s: float = Field(default=0.5, ge=0)  # seconds


def load_serve_settings(env: Mapping[str, str]) -> ServeSettings:
    names = {
        "max_upload_bytes": "LLMQ_SERVE_MAX_UPLOAD_BYTES",
        "chat_timeout_s": "LLMQ_SERVE_CHAT_TIMEOUT_S",
        "db_pool": "LLMQ_SERVE_DB_POOL",
        "poll_cache_s": "LLMQ_SERVE_POLL_CACHE_S",
    }
    return ServeSettings.model_validate({f: env[v] for f, v in names.items() if env.get(v)})
