"""Alert thresholds, table-driven; the webhook against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from workers.observability.alerts import (
    Alert,
    ProviderRate,
    QuotaUse,
    evaluate,
    post_alerts,
    provider_alerts,
    quota_alerts,
    quota_use_ratio,
)

D = Decimal


@pytest.mark.parametrize(
    ("calls", "failures", "threshold", "min_calls", "fires"),
    [
        (10, 5, 0.5, 5, True),  # exactly at the threshold fires
        (10, 4, 0.5, 5, False),
        (4, 4, 0.5, 5, False),  # too few calls to judge
        (5, 5, 0.5, 5, True),
        (0, 0, 0.1, 0, False),  # no calls never divides by zero
        (100, 1, 0.01, 5, True),
        (100, 0, 0.01, 5, False),
    ],
)
def test_provider_failure_rate(
    calls: int, failures: int, threshold: float, min_calls: int, fires: bool
) -> None:
    alerts = provider_alerts([ProviderRate("openai", calls, failures)], threshold, min_calls)
    assert bool(alerts) is fires
    if fires:
        (a,) = alerts
        assert a.kind == "provider_failure_rate" and a.subject == "openai"
        assert a.value == pytest.approx(failures / calls)


def _use(used_usd: str, limit_usd: str | None, used_tok: int, limit_tok: int | None) -> QuotaUse:
    return QuotaUse(
        "acme", "day", D(used_usd), D(limit_usd) if limit_usd else None, used_tok, limit_tok
    )


@pytest.mark.parametrize(
    ("use", "ratio", "fires_at_0_9"),
    [
        (_use("9", "10", 0, None), 0.9, True),
        (_use("8.99", "10", 0, None), 0.899, False),
        (_use("1", "10", 950, 1000), 0.95, True),  # tokens can trip it alone
        (_use("5", None, 5, None), None, False),  # unlimited never alerts
        (_use("0", "0", 0, None), 1.0, True),  # a zero budget is fully used
        (_use("12", "10", 0, None), 1.2, True),  # in-flight reservations may exceed the limit
    ],
)
def test_quota_use(use: QuotaUse, ratio: float | None, fires_at_0_9: bool) -> None:
    got = quota_use_ratio(use)
    assert got == (None if ratio is None else pytest.approx(ratio))
    alerts = quota_alerts([use], 0.9)
    assert bool(alerts) is fires_at_0_9
    if alerts:
        assert alerts[0].subject == "acme/day" and alerts[0].kind == "quota_use"


def test_evaluate_orders_providers_then_quotas() -> None:
    alerts = evaluate(
        [ProviderRate("cohere", 10, 9), ProviderRate("openai", 10, 0)],
        [_use("10", "10", 0, None)],
        failure_rate_alert=0.5,
        quota_use_alert=0.9,
    )
    assert [a.kind for a in alerts] == ["provider_failure_rate", "quota_use"]
    assert alerts[0].subject == "cohere"


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def hook_url():  # type: ignore[no-untyped-def]
    _Hook.received = []
    _Hook.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=abc"
    server.shutdown()
    server.server_close()


def test_webhook_receives_alerts(hook_url: str) -> None:
    alert = Alert("quota_use", "acme/day", 0.95, 0.9, "tenant acme: 95% of its day quota used")
    assert post_alerts(hook_url, [alert]) is True
    (doc,) = _Hook.received
    assert doc["source"] == "llmq"
    assert doc["alerts"][0]["subject"] == "acme/day"


def test_webhook_failure_is_reported_not_raised(hook_url: str, caplog) -> None:  # type: ignore[no-untyped-def]
    _Hook.status = 500
    alert = Alert("quota_use", "acme/day", 0.95, 0.9, "m")
    assert post_alerts(hook_url, [alert]) is False
    assert "token=abc" not in caplog.text  # the URL may carry a token: only the host is logged


def test_no_alerts_posts_nothing(hook_url: str) -> None:
    assert post_alerts(hook_url, []) is True
    assert _Hook.received == []
