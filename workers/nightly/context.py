"""What a nightly run needs and what it gives back: `NightlyContext` and `RunResult`.

Owns: the context every phase receives (ledger sessions, the engine for the run's lock, the
config, how to publish job ids, the clock, progress output) and the run's result record.
Must not: run a phase or touch the ledger itself (workers/nightly/run.py and phases.py do);
it is a plain record so that the phases and the run's order can import it without importing
each other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from schemas.config import LLMConfig

log = logging.getLogger("workers.nightly")  # the run's log lines stay under one logger

RUN_NAME = "nightly"

Publish = Callable[[Sequence[uuid.UUID]], None]
RunStatus = Literal["done", "already_done", "busy", "stopped"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class NightlyContext:
    """What a run needs: the ledger, the config, a way to publish job ids, a clock."""

    sessions: sessionmaker[Session]
    engine: Engine  # the advisory lock takes one connection from it for the whole run
    config: LLMConfig
    publish: Publish
    clock: Callable[[], datetime] = utcnow
    poll_s: float = 2.0  # seconds between ledger polls while waiting
    wait_timeout_s: float = 20 * 3600.0  # then the report is written with what settled
    progress: Callable[[str], None] | None = None  # one line per step, for the CLI
    name: str = RUN_NAME

    def say(self, message: str) -> None:
        log.info("nightly: %s", message)
        if self.progress is not None:
            self.progress(message)


@dataclass
class RunResult:
    """What one call of `run_nightly` did: its status, the phases it ran, the report."""

    status: RunStatus
    run_date: date
    phases_run: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    paths: list[Path] = field(default_factory=list)  # report files written by this call
