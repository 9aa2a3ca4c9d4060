"""Header parsers and the transport-error translator (pure, table-driven)."""

from __future__ import annotations

import httpx
import pytest

from core.errors import ModelUnavailable, ProviderTimeout, ProviderUnavailable
from schemas.job import ChatMessage
from workers.providers.base import ProviderRequest, estimated_usage, status_class
from workers.providers.http import (
    go_duration_s,
    retry_after_s,
    translate_transport_errors,
    until_s,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # ms wins, as in the SDKs
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:13:50 GMT"}, 30.0),
        ({"retry-after": "Tue, 14 Nov 2023 22:00:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
    ],
)
def test_retry_after(headers, expected):
    assert retry_after_s(httpx.Headers(headers), now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("6m0s", 360.0),
        ("1h2m3s", 3723.0),
        ("250us", 0.00025),
        ("7", 7.0),
        ("", None),
        (None, None),
        ("later", None),
    ],
)
def test_go_duration(text, expected):
    result = go_duration_s(text)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-11-14T22:13:30Z", 10.0),
        ("2023-11-14T22:13:30+00:00", 10.0),
        ("2023-11-14T23:13:30+01:00", 10.0),
        ("2023-11-14T22:00:00Z", 0.0),
        ("2023-11-14T22:13:30", None),  # no zone: unknown instant
        ("nonsense", None),
        (None, None),
    ],
)
def test_until(text, expected):
    assert until_s(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), ProviderUnavailable),
        (httpx.ConnectTimeout("slow connect"), ProviderUnavailable),
        (httpx.ReadTimeout("slow read"), ProviderTimeout),
        (httpx.WriteTimeout("slow write"), ProviderTimeout),
        (httpx.PoolTimeout("pool"), ProviderTimeout),
        (httpx.RemoteProtocolError("closed"), ProviderUnavailable),
        (httpx.ReadError("reset"), ProviderUnavailable),
        (httpx.UnsupportedProtocol("ftp"), ModelUnavailable),
    ],
)
def test_transport_errors(exc, expected):
    with pytest.raises(expected) as info:
        with translate_transport_errors("openai", "m", deployment="openai/m"):
            raise exc
    err = info.value
    assert (err.provider, err.model, err.deployment) == ("openai", "m", "openai/m")
    assert err.__cause__ is exc


@pytest.mark.parametrize(
    ("status", "expected"),
    [(400, "BadRequest"), (401, "AuthFailed"), (402, "InsufficientCredit"), (403, "AuthFailed"),
     (404, "ModelUnavailable"), (408, "ProviderTimeout"), (409, "ProviderUnavailable"),
     (418, "BadRequest"), (422, "BadRequest"), (429, "RateLimited"), (500, "ProviderUnavailable"),
     (502, "ProviderUnavailable"), (503, "ProviderUnavailable"), (504, "ProviderTimeout"),
     (529, "ProviderUnavailable"), (301, "MalformedReply")],
)  # fmt: skip
def test_status_first(status, expected):
    assert status_class(status).__name__ == expected


def test_estimated_usage_bounds_the_prompt():
    req = ProviderRequest(
        model_id="m",
        messages=(ChatMessage(role="user", content="x" * 40),),
        max_tokens=5,
        system="y" * 8,
    )
    usage = estimated_usage(req, "z" * 12)
    assert usage.estimated
    assert (usage.prompt_tokens, usage.completion_tokens) == (10 + 3 + 2 + 3, 3)
