"""Alert thresholds: provider failure rates and tenant quota use in, a list of alerts out.

Owns: the pure threshold rules (`provider_alerts`, `quota_alerts`, `evaluate`) and the optional
webhook POST (`post_alerts`, the only I/O here, best effort).

Must not: read the ledger or Redis (callers pass numbers in), or put secrets in a payload: alerts
carry provider names, tenant names and ratios only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Literal
from urllib.parse import urlsplit

log = logging.getLogger("llmq.alerts")

DEFAULT_MIN_CALLS = 5  # below this a single failure would read as a 100 % failure rate


@dataclass(frozen=True, slots=True)
class ProviderRate:
    """Calls and failures of one provider over the window the caller chose."""

    provider: str
    calls: int
    failures: int


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """One tenant's window: used = spent + reserved. Limits None = unlimited."""

    tenant: str
    period: str  # day | month
    used_usd: Decimal
    limit_usd: Decimal | None
    used_tokens: int
    limit_tokens: int | None


@dataclass(frozen=True, slots=True)
class Alert:
    kind: Literal["provider_failure_rate", "quota_use", "key_revoked"]
    subject: str  # provider name, or "tenant/period"
    value: float  # the observed ratio, 0..1 (quota use may exceed 1 by in-flight reservations)
    threshold: float
    message: str


def provider_alerts(
    rates: Iterable[ProviderRate], threshold: float, min_calls: int = DEFAULT_MIN_CALLS
) -> list[Alert]:
    """One alert per provider whose failure rate is at or above `threshold` (0..1)."""
    alerts = []
    for r in rates:
        if r.calls < max(min_calls, 1):
            continue
        rate = r.failures / r.calls
        if rate >= threshold:
            alerts.append(
                Alert(
                    "provider_failure_rate",
                    r.provider,
                    rate,
                    threshold,
                    f"provider {r.provider}: {r.failures}/{r.calls} calls failed "
                    f"({rate:.0%} >= {threshold:.0%})",
                )
            )
    return alerts


def quota_use_ratio(q: QuotaUse) -> float | None:
    """The larger of USD and token use as a fraction of the limit; None when unlimited."""
    ratios = []
    if q.limit_usd is not None:
        ratios.append(float(q.used_usd / q.limit_usd) if q.limit_usd > 0 else 1.0)
    if q.limit_tokens is not None:
        ratios.append(q.used_tokens / q.limit_tokens if q.limit_tokens > 0 else 1.0)
    return max(ratios) if ratios else None


def quota_alerts(uses: Iterable[QuotaUse], threshold: float) -> list[Alert]:
    """One alert per tenant window whose use is at or above `threshold` (0..1) of its limit."""
    alerts = []
    for q in uses:
        ratio = quota_use_ratio(q)
        if ratio is not None and ratio >= threshold:
            alerts.append(
                Alert(
                    "quota_use",
                    f"{q.tenant}/{q.period}",
                    ratio,
                    threshold,
                    f"tenant {q.tenant}: {ratio:.0%} of its {q.period} quota used "
                    f"(>= {threshold:.0%})",
                )
            )
    return alerts


def evaluate(
    rates: Iterable[ProviderRate],
    uses: Iterable[QuotaUse],
    failure_rate_alert: float,
    quota_use_alert: float,
    min_calls: int = DEFAULT_MIN_CALLS,
) -> list[Alert]:
    """All alerts, providers first, each group in input order."""
    return [
        *provider_alerts(rates, failure_rate_alert, min_calls),
        *quota_alerts(uses, quota_use_alert),
    ]


def alert_payload(alerts: Sequence[Alert]) -> dict[str, object]:
    return {"source": "llmq", "alerts": [asdict(a) for a in alerts]}


def post_alerts(url: str, alerts: Sequence[Alert], timeout_s: float = 5.0) -> bool:
    """POST the alerts as JSON to `url`. Best effort: False (and a warning) on any failure.

    The URL may embed a token, so only its host is ever logged.
    """
    import httpx

    if not alerts:
        return True
    host = urlsplit(url).hostname or "?"
    try:
        resp = httpx.post(url, json=alert_payload(alerts), timeout=timeout_s)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("alert webhook to %s failed: %s", host, type(exc).__name__)
        return False
    return True
