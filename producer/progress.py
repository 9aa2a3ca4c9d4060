"""The `llmq submit --wait` progress bar: done/total, failures, parked, cost so far, ETA.

Owns: rendering polled `BatchStatus` values with rich, on stderr so stdout stays clean for
`--json`. Must not: query anything itself; `Client.wait` polls and calls it.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.ledger.batch_reads_repo import BatchStatus
from core.money import money_str


class BatchProgress:
    """A context manager and a `Client.wait` progress callback.

    Example::

        with BatchProgress(total=n) as bar:
            status = client.wait(batch_id, progress=bar)
    """

    def __init__(self, total: int, console: Console | None = None, label: str = "batch") -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed [red]{task.fields[failed]}"),
            TextColumn("parked [yellow]{task.fields[parked]}"),
            TextColumn("${task.fields[cost]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(
            label, total=total, failed=0, parked=0, cost="0.00000000"
        )

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def __call__(self, status: BatchStatus) -> None:
        """Show one polled status."""
        self.progress.update(
            self.task,
            completed=status.done,
            total=status.total,
            failed=status.counts["failed"],
            parked=status.parked,
            cost=money_str(status.cost_usd),
        )
