"""The Providers page's rows: per configured deployment, its circuit and cooldown, its calls,
success rate and latency over the last hour, and its rate-limit headroom.

Owns: gathering those figures from the same sources `llmq providers` and `llmq metrics` read:
the shared Redis health store the workers write (circuit, cooldown, the rate window's admitted
requests and tokens, learned limits) and the attempts ledger (calls in the last hour, by the
BRIN index on `started_at`). Must not: write to Redis or the ledger, or show keys (a rotating
deployment's per-key buckets are not broken out: the row shows the deployment's own bucket).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.ledger.db import session_scope
from core.ledger.spend_reads_repo import DeploymentCalls, deployment_calls
from llmq.serve.state import ServeState

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ProviderView:
    provider: str
    deployment: str
    model: str
    circuit: str | None  # None: the health store could not be read
    cooldown_s: float
    calls: DeploymentCalls | None  # None: no finished call in the last hour
    rpm_used: int | None
    rpm_limit: int | None
    tpm_used: int | None
    tpm_limit: int | None


def _limit(configured: int | None, learned: int | None) -> int | None:
    """As admission applies it: the lower of the configured and the learned limit."""
    known = [v for v in (configured, learned) if v]
    return min(known) if known else None


def gather(state: ServeState, health: Any, now: datetime) -> tuple[list[ProviderView], str]:
    """(one row per configured deployment, a warning when the health store is unreachable)."""
    models = list(state.config.models)
    ids = [m.deployment_id for m in models]
    with session_scope(state.sessions) as session:
        calls = {c.deployment: c for c in deployment_calls(session, now - WINDOW)}
    warning, snap, stats, use = "", None, {}, {}
    try:
        t = time.time()
        snap, stats, use = health.snapshot(ids, t), health.stats(ids), health.window_use(ids, t)
    except Exception as exc:  # noqa: BLE001 - the ledger's half of the page still shows
        warning = f"health store unavailable ({type(exc).__name__}): circuit and headroom unknown"
    rows = []
    for m in models:
        dep = m.deployment_id
        h = snap.get(dep) if snap is not None else None
        st = stats.get(dep, {})
        used = use.get(dep)
        rows.append(
            ProviderView(
                provider=m.provider.value,
                deployment=dep,
                model=m.name,
                circuit=h.circuit if h is not None else None,
                cooldown_s=max(0.0, h.cooldown_until - time.time()) if h is not None else 0.0,
                calls=calls.get(dep),
                rpm_used=used[0] if used else None,
                rpm_limit=_limit(m.rpm, st.get("learned_rpm")),
                tpm_used=used[1] if used else None,
                tpm_limit=_limit(m.tpm, st.get("learned_tpm")),
            )
        )
    return rows, warning
