"""Issue 20 item 7 at the transport edge: `send_bounded` against a fake transport (httpx's
MockTransport, no code of ours replaced) for the cases the simulator does not send: a declared
Content-Length over the limit, a gzip bomb, an undecodable body."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest

from core.errors import MalformedReply, ReplyTooLarge
from workers.providers.bounded import send_bounded

FIELDS = {"provider": "p", "model": "m"}


class _Endless(httpx.SyncByteStream):
    """A body that never ends; reading it whole would never return."""

    def __init__(self) -> None:
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            self.read += 65536
            yield b"x" * 65536


def _send(handler, max_bytes: int = 100_000, deadline_s: float = 10.0) -> httpx.Response:  # type: ignore[no-untyped-def]
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        request = client.build_request("POST", "http://sim.test/v1/chat", json={})
        return send_bounded(client, request, max_bytes, deadline_s, **FIELDS)


def test_an_endless_body_stops_at_the_limit() -> None:
    stream = _Endless()
    with pytest.raises(ReplyTooLarge) as caught:
        _send(lambda r: httpx.Response(200, stream=stream))
    assert stream.read <= 100_000 + 2 * 65536
    assert caught.value.kind == "reply_too_large" and caught.value.status == 200


def test_a_declared_length_over_the_limit_fails_before_reading() -> None:
    stream = _Endless()
    headers = {"content-length": "400000000"}
    with pytest.raises(ReplyTooLarge, match="declares 400000000 bytes"):
        _send(lambda r: httpx.Response(200, headers=headers, stream=stream))
    assert stream.read == 0


def test_a_gzip_bomb_counts_what_it_inflates_to() -> None:
    bomb = gzip.compress(b"\0" * 5_000_000)
    assert len(bomb) < 100_000
    headers = {"content-encoding": "gzip"}
    with pytest.raises(ReplyTooLarge):
        _send(lambda r: httpx.Response(200, headers=headers, stream=httpx.ByteStream(bomb)))


def test_an_undecodable_body_is_malformed() -> None:
    headers = {"content-encoding": "gzip"}
    with pytest.raises(MalformedReply, match="cannot be decoded"):
        _send(lambda r: httpx.Response(200, headers=headers, stream=httpx.ByteStream(b"not gzip")))


def test_a_body_within_the_limit_comes_back_decoded_and_whole() -> None:
    body = b'{"ok": true, "text": "' + b"y" * 50_000 + b'"}'
    headers = {"content-encoding": "gzip", "x-request-id": "req_1"}
    resp = _send(
        lambda r: httpx.Response(200, headers=headers, stream=httpx.ByteStream(gzip.compress(body)))
    )
    assert resp.content == body and resp.json()["ok"] is True
    assert resp.headers["x-request-id"] == "req_1"
    assert "content-encoding" not in resp.headers
