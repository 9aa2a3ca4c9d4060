"""Taking a deployment's admission slot in the health store, and giving it back.

Owns: `Hold` (what one admission took: a rate-limit slot named by a ticket, and the half-open
probe lease if one was claimed), `take_slot`, `confirm_slot`, `give_back`, `next_wake` and
`MIN_WAIT_S`. The
queue's admission (workers/admission.py) and the direct call (workers/direct_call.py) both go
through here, so a deployment is skipped, waited for or probed for the same reasons on both.

Must not: rank deployments (`select` does), decide retries (`workers.retry` does), or touch the
ledger. Every store change is one atomic store operation (`try_acquire`, `claim_probe`,
`confirm`, `give_back`); this module only sequences them.

Retry-After right before the call (issue 20, item 12): `take_slot` refuses a cooling
deployment, but the queue's admission reserves quota (a Postgres transaction, hundreds of
milliseconds under load) after taking the slot, and a 429 may arrive meanwhile.
`confirm_slot` is therefore the last step before the call: one atomic store operation that
reads the cooldown and keeps the slot, or gives the whole admission back.

Keys with rotation (issue 20): a deployment with several API keys has one rate-limit bucket
per key (`dep#fingerprint`: the configured rpm/tpm are per key, as providers count them) and
one 429 cooldown per key; the circuit, the probe lease and any other cooldown stay per
deployment. `take_slot` picks the key before taking the slot, round-robin over the live keys,
skipping those without headroom or cooling down; the `Hold` names the key (by fingerprint) so
the call uses exactly that key. A deployment with one key keeps the deployment id as bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from workers.providers.keys import KeyPool
from workers.routing._health_model import (
    AcquireCall,
    Circuit,
    ConfirmCall,
    HealthSnapshot,
    HealthStore,
    bucket_id,
)
from workers.routing.select import Candidate

# Shortest wait either path schedules: a bucket that refills in microseconds still gets a
# real countdown (queue) or sleep (direct call) instead of a busy loop.
MIN_WAIT_S = 0.05


@dataclass(frozen=True, slots=True)
class Hold:
    """One admission taken from the health store, until the call is made or it is given back.

    `ticket` names the rate-limit slot; `tokens` is what it took from the token window;
    `probe_claimed_at` is the `now` (unix seconds) a half-open probe lease was claimed at, or
    None when the circuit was closed and no lease was taken. `key` is the fingerprint of the
    API key the call must use (None: the deployment's only key) and `bucket` the rate-limit
    bucket the slot was taken in (None: the deployment's own).
    """

    dep_id: str
    ticket: str
    tokens: int
    probe_claimed_at: float | None
    key: str | None = None
    bucket: str | None = None

    @property
    def slot_id(self) -> str:
        """The bucket id the store knows this slot by."""
        return self.bucket or self.dep_id


def take_slot(  # noqa: PLR0913 - the candidate's state plus its key pool
    health: HealthStore,
    cand: Candidate,
    circuit: Circuit,
    now: float,
    probe_wait_s: float,
    keys: KeyPool | None = None,
) -> Hold | float:
    """Claim the probe lease (half-open circuit only), then a rate-limit slot, for `cand`.

    With `keys` holding several keys, the slot is taken in the first key's bucket (in
    round-robin order) that has headroom and is not cooling down; the wait is then the
    shortest of the keys' waits.

    Returns the `Hold`, or the seconds to wait before this deployment can be tried: the rate
    window's answer, or `probe_wait_s` when another caller holds the probe. A probe lease
    claimed for a candidate that then has no rate headroom is given back at once, so it cannot
    keep the deployment half-open and unprobed for the lease's length.
    """
    dep = cand.deployment
    dep_id = cand.deployment_id
    probe_at: float | None = None
    if circuit != "closed":
        if not health.claim_probe(dep_id, now):
            return probe_wait_s  # someone else is probing; its answer comes soon
        probe_at = now
    tokens = cand.est_prompt_tokens + cand.max_tokens
    ticket = uuid.uuid4().hex
    choices: list[str | None] = [None]
    if keys is not None and keys.rotating:
        choices = [k.fingerprint for k in keys.in_turn()] or [None]  # none left: the call says
    wait = 0.0
    for key in choices:
        bucket = bucket_id(dep_id, key)
        waited = health.try_acquire(bucket, dep.rpm, dep.tpm, tokens, now, ticket=ticket)
        if waited <= 0:
            return Hold(dep_id, ticket, tokens, probe_at, key, bucket if key else None)
        wait = waited if wait <= 0 else min(wait, waited)
    if probe_at is not None:
        health.give_back(dep_id, None, 0, probe_at)
    return wait


def take_closed_slots(
    health: HealthStore, cands: Sequence[Candidate], now: float
) -> list[Hold | float]:
    """`take_slot` for many candidates whose circuit is closed and whose deployment has one
    key (no probe lease, no key rotation), in one round trip to the store (issue 21); each
    answer is what `take_slot` would have returned, in order."""
    calls = [
        AcquireCall(
            c.deployment_id,
            c.deployment.rpm,
            c.deployment.tpm,
            c.est_prompt_tokens + c.max_tokens,
            now,
            uuid.uuid4().hex,
        )
        for c in cands
    ]
    waits = health.try_acquire_many(calls)
    return [
        Hold(call.dep_id, call.ticket, call.tokens, None) if wait <= 0 else wait
        for call, wait in zip(calls, waits, strict=True)
    ]


def confirm_slots(health: HealthStore, holds: Sequence[Hold], now: float) -> list[float]:
    """`confirm_slot` for many holds, in one round trip (issue 21)."""
    calls = [ConfirmCall(h.slot_id, h.ticket, h.tokens, h.probe_claimed_at, now) for h in holds]
    return health.confirm_many(calls)


def confirm_slot(health: HealthStore, hold: Hold, now: float) -> float:
    """The last step before the call: 0.0 = go; otherwise the deployment cools down, the
    hold was given back (atomically with reading the cooldown), and this is the wait."""
    return health.confirm(hold.slot_id, hold.ticket, hold.tokens, hold.probe_claimed_at, now)


def give_back(health: HealthStore, hold: Hold) -> None:
    """Return the hold's rate slot and end its probe lease (one atomic store operation)."""
    health.give_back(hold.slot_id, hold.ticket, hold.tokens, hold.probe_claimed_at)


def next_wake(
    dep_ids: Iterable[str],
    snapshot: HealthSnapshot,
    has_key: Mapping[str, bool],
    excluded: frozenset[str],
    now: float,
) -> float | None:
    """When the first deployment that only cools down (or has an open circuit) may serve
    again, in unix seconds; None when none of them will by merely waiting."""
    wakes: list[float] = []
    for dep_id in dep_ids:
        if dep_id in excluded or not has_key.get(dep_id, False):
            continue
        h = snapshot.get(dep_id)
        if h.cooldown_until > now:
            wakes.append(h.cooldown_until)
        elif h.circuit == "open" and h.open_until > now:
            wakes.append(h.open_until)
    return min(wakes) if wakes else None
