"""The one `llmq` command. Each command group lives in llmq/commands/<group>.py and
registers itself here with one line; heavy imports happen inside the commands, not at start."""

from __future__ import annotations

import typer

from llmq.commands import (
    batch,
    cache,
    db,
    demo,
    doctor,
    keys,
    monitor,
    nightly,
    providers,
    quota,
    reconcile,
    serve,
    service,
)

app = typer.Typer(
    name="llmq",
    help="Run LLM calls at scale: submit JSONL batches, poll results, run workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _setup(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO instead of WARNING."),
) -> None:
    """Redacted logging for every command: keys from the environment never reach a log line."""
    import logging
    import os

    from schemas.settings import load_settings
    from workers.observability.logs import setup_logging
    from workers.observability.redaction import env_secrets

    setup_logging(
        json_lines=load_settings(os.environ).log_json,
        level=logging.INFO if verbose else logging.WARNING,
        secrets=env_secrets(os.environ),
    )


for module in (
    db,
    batch,
    service,
    serve,
    keys,
    providers,
    quota,
    nightly,
    monitor,
    demo,
    doctor,
    cache,
    reconcile,
):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
