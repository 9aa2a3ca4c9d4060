"""The values one job run passes between its steps (pipeline -> admission -> attempt).

Owns: `ParsedJob` (a claimed job parsed once), `Admitted` (what admission took for the call),
`Outcome` / `RunStatus` / `NOOP` (what a run did, for the task to map to a message) and `Clock`
(the run's time). Must not: do I/O or hold behaviour beyond trivial accessors; the steps live
in workers/pipeline.py, workers/admission.py and workers/attempt.py, which all import this
module and not each other's internals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from core.ledger.jobs_repo import AttemptStart, ClaimedJob
from workers.routing.select import Candidate, RouteRequest

if TYPE_CHECKING:
    from workers.pricing import Price

RunStatus = Literal[
    "noop",
    "succeeded",
    "failed",
    "retry_later",
    "fallback",
    "waiting",
    "parked",
    "superseded",
    "batched",  # issue 18: waits in a provider batch lane; no message until its result
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run did and whether the job's message must be sent again.

    `countdown_s` not None = publish the job id again after that many seconds (0 = now).
    None = no message: the job is finished, parked, held by someone else, or waits longer than
    `routing.max_countdown_s` (then only `not_before` is written and the sweeper re-sends).
    """

    status: RunStatus
    countdown_s: float | None = None


NOOP = Outcome("noop")


@dataclass(frozen=True, slots=True)
class ParsedJob:
    """A claimed job, parsed once for routing, quota and the request."""

    claim: ClaimedJob
    request: RouteRequest
    temperature: float | None
    prompt_bound: int  # guaranteed upper bound on prompt tokens (quota)


@dataclass(frozen=True, slots=True)
class Admitted:
    """The admitted candidate: rate slot (and probe lease) taken, quota reserved, attempt row
    written. The call is now owed: its finish records it and settles the reservation, and its
    reply closes or re-opens a half-open circuit, so nothing is given back after this."""

    candidate: Candidate
    price: Price | None
    start: AttemptStart
    left: int  # candidates after this one in the plan
    key: str | None = None  # fingerprint of the API key the call must use (None: the only one)
    bucket: str | None = None  # the key's rate-limit bucket (None: the deployment's own)

    @property
    def slot_id(self) -> str:
        """Where the call's success or failure is recorded: the key's bucket or deployment."""
        return self.bucket or self.start.deployment


@dataclass(frozen=True, slots=True)
class Clock:
    """The run's time: the `now` it was given, advanced by the monotonic time since."""

    base: datetime
    mono: float

    @classmethod
    def starting(cls, now: datetime) -> Clock:
        return cls(now, time.monotonic())

    def now(self) -> datetime:
        return self.base + timedelta(seconds=time.monotonic() - self.mono)
