"""`llmq serve`: OpenAI's Files + Batches API over llmq's queue (see llmq/serve/).

Owns: turning CLI options into a uvicorn run of `llmq.serve.app:factory`. Must not: build the
app itself (each uvicorn worker process calls the factory, which reads the environment).
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.", min=1)] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve /v1/files, /v1/batches and /v1/chat/completions; keys from `llmq keys create`."""
    import uvicorn

    uvicorn.run(
        "llmq.serve.app:factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=True,
    )
