"""The ASGI app of `llmq serve`, built per process by `create_app` (uvicorn's factory).

Owns: wiring settings, the model config, the database engine and the routes into one FastAPI
app. Must not: build anything at import (workers of `uvicorn --workers N` each call the
factory after they start) or log keys (uvicorn's access log shows method, path and status).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.config_file import load_config
from core.ledger.db import make_engine, make_sessionmaker
from llmq.serve import dashboard, errors
from llmq.serve.routes import router
from llmq.serve.settings import ServeSettings, load_serve_settings
from llmq.serve.state import ServeState
from schemas.config import LLMConfig
from schemas.settings import load_settings


def create_app(
    env: Mapping[str, str] | None = None,
    config: LLMConfig | None = None,
    serve_settings: ServeSettings | None = None,
) -> FastAPI:
    """The app, configured from `env` (default `os.environ`): LLMQ_DATABASE_URL,
    LLMQ_BROKER_URL, LLMQ_CONFIG and the LLMQ_SERVE_* settings."""
    env = os.environ if env is None else env
    settings = load_settings(env)
    serve = serve_settings or load_serve_settings(env)
    config = config or load_config(settings.config_path, env)
    engine = make_engine(settings.database_url, pool_size=serve.db_pool)
    state = ServeState(engine, make_sessionmaker(engine), settings.broker_url, config, serve)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_warmup = dashboard.start_warmup(app)  # background: /health answers meanwhile
        yield
        stop_warmup()
        state.close()

    app = FastAPI(title="llmq serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.llmq = state
    errors.install(app)
    app.include_router(router)
    dashboard.install(app, env, settings.state_redis_url)  # `/`: the web dashboard
    return app


def factory() -> FastAPI:
    """For `uvicorn --factory llmq.serve.app:factory`: everything from the environment."""
    return create_app()
