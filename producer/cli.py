"""The one `llmq` command. Each command group lives in producer/commands/<group>.py and
registers itself here with one line; heavy imports happen inside the commands, not at start."""

from __future__ import annotations

import typer

from producer.commands import (
    batch,
    cache,
    db,
    demo,
    doctor,
    monitor,
    nightly,
    providers,
    quota,
    service,
)

app = typer.Typer(
    name="llmq",
    help="Run LLM calls at scale: submit JSONL batches, poll results, run workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (db, batch, service, providers, quota, nightly, monitor, demo, doctor, cache):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
