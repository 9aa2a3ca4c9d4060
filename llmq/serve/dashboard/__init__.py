"""The web dashboard of `llmq serve` at `/`: batches, a batch, a job's attempt timeline,
spend, providers; sign-in with the API's keys.

Owns: `install(app, env)`, which adds the routes and the per-process `DashboardState` (the
session secret, the spend memo, the health store client, made on first use) and
`start_warmup`, which the app's lifespan calls to fill the memos in the background. Server-rendered
HTML with inline SVG charts and no JavaScript: `routes` (paths, visibility), `views` (page
bodies), `html` (markup), `svg` (charts), `auth` (sessions, CSRF), `spend` and
`providers_view` (figures), `warmup`. Must not: build anything at import (the app factory calls this).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse

from llmq.serve.dashboard.batch_memo import FrozenMemo
from llmq.serve.dashboard.routes import LoginNeeded, router
from llmq.serve.dashboard.spend import SpendMemo


@dataclass
class DashboardState:
    """Per process: `secret` (LLMQ_SERVE_SESSION_SECRET, may be empty: sessions are then
    signed by the key's stored hash alone), the spend memo, and the Redis health store."""

    secret: str
    state_redis_url: str
    memo: SpendMemo = field(default_factory=SpendMemo)
    batches: FrozenMemo = field(default_factory=FrozenMemo)
    warmup_s: float | None = None  # how long the start-up warm-up took (`warmup`), once done
    _health: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def health(self) -> Any:
        """The workers' shared health store (read-only use), connected on first need."""
        with self._lock:
            if self._health is None:
                import redis

                from workers.routing.health import RedisHealthStore

                client = redis.Redis.from_url(self.state_redis_url, socket_timeout=2)
                self._health = RedisHealthStore(client)
            return self._health


def install(app: FastAPI, env: Mapping[str, str], state_redis_url: str) -> None:
    """Add the dashboard's routes and state to `app`."""
    app.state.dashboard = DashboardState(env.get("LLMQ_SERVE_SESSION_SECRET", ""), state_redis_url)

    @app.exception_handler(LoginNeeded)
    async def _login(_: Request, exc: LoginNeeded) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    app.include_router(router)


def start_warmup(app: FastAPI) -> Callable[[], None]:
    """Fill the dashboard's memos in a background thread (`warmup`); returns its stopper."""
    from llmq.serve.dashboard import warmup

    return warmup.start(app.state.dashboard, app.state.llmq)
