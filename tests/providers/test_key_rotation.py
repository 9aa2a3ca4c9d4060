"""Keys with rotation against the real simulator: several keys round-robin, a key answering
401 leaves the pool (with a warning and a webhook alert) while the others carry on, and a key
file is re-read when it changes or on SIGHUP. The simulator refuses keys starting with `bad`.

What each request carried is recorded by a transport wrapper as key fingerprints only.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.errors import AuthFailed, ProviderUnavailable
from schemas.config import LLMConfig
from schemas.job import ChatMessage
from workers.providers import build_adapter, has_credentials
from workers.providers.base import ProviderRequest
from workers.providers.keys import fingerprint, forget_revoked, install_sighup_reload

K1 = "sk-rot-one-1111aaaa2222"
K2 = "sk-rot-two-3333bbbb4444"
BAD = "bad-rot-key-5555cccc6666"
AUTH_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")


class Recording(httpx.BaseTransport):
    """Forwards to the real transport; remembers each request's key fingerprint."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raw = next((request.headers[h] for h in AUTH_HEADERS if h in request.headers), "")
        self.seen.append(fingerprint(raw.removeprefix("Bearer ")))
        return self.inner.handle_request(request)


@pytest.fixture(autouse=True)
def _fresh_pools() -> Iterator[None]:
    forget_revoked()
    yield
    forget_revoked()


@pytest.fixture()
def recording() -> Iterator[tuple[httpx.Client, Recording]]:
    transport = Recording()
    with httpx.Client(transport=transport, timeout=30) as client:
        yield client, transport


def config_for(
    sim: Any, provider: str, monitoring: dict[str, Any] | None = None, **settings: Any
) -> LLMConfig:
    return LLMConfig.model_validate(
        {
            "providers": {provider: {"api_base": sim.api_base(provider), **settings}},
            "models": [{"name": "m", "provider": provider}],
            "monitoring": monitoring or {},
        }
    )


def request() -> ProviderRequest:
    return ProviderRequest("m", (ChatMessage(role="user", content="hi"),), max_tokens=8)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google"])
def test_keys_are_used_round_robin(sim: Any, recording: Any, provider: str) -> None:
    client, transport = recording
    config = config_for(sim, provider, api_keys=[K1, K2])
    adapter = build_adapter(config.models[0], config, client)
    for _ in range(4):
        assert adapter.complete(request()).text
    assert transport.seen == [fingerprint(K1), fingerprint(K2)] * 2
    assert sim.stats()["total_requests"] == 4


class Webhook:
    """A local alert receiver: remembers every JSON payload POSTed to it."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.payloads.append(json.loads(body))
                self.send_response(204)
                self.end_headers()
                outer.got.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_refused_key_leaves_the_pool_with_an_alert(
    sim: Any, recording: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, transport = recording
    hook = Webhook()
    try:
        config = config_for(
            sim, "openai", api_keys=[K1, BAD, K2], monitoring={"webhook_url": hook.url}
        )
        adapter = build_adapter(config.models[0], config, client)
        with caplog.at_level(logging.WARNING, logger="llmq.alerts"):
            for _ in range(6):
                assert adapter.complete(request()).text  # the bad key never fails a call
        assert transport.seen == [fingerprint(k) for k in (K1, BAD, K1, K2, K1, K2, K1)]
        assert sim.stats()["providers"]["openai"]["by_status"] == {"200": 6, "401": 1}
        [line] = [r.getMessage() for r in caplog.records if "leaves the pool" in r.getMessage()]
        assert fingerprint(BAD) in line and "HTTP 401" in line and "2 key(s) left" in line
        assert BAD not in caplog.text and BAD[:8] not in caplog.text
        assert hook.got.wait(5)
        [alert] = hook.payloads[0]["alerts"]
        assert alert["kind"] == "key_revoked" and alert["subject"] == "openai/m"
        assert fingerprint(BAD) in alert["message"] and BAD[:8] not in json.dumps(hook.payloads)
        # A new adapter (another deployment, a rebuilt runtime) skips it from the start.
        again = build_adapter(config.models[0], config, client)
        transport.seen.clear()
        again.complete(request())
        again.complete(request())
        assert fingerprint(BAD) not in transport.seen
    finally:
        hook.server.shutdown()


def test_when_every_key_is_refused_the_deployment_fails_auth(sim: Any, recording: Any) -> None:
    client, transport = recording
    other = "bad-rot-key-7777dddd8888"
    config = config_for(sim, "openai", api_keys=[BAD, other])
    adapter = build_adapter(config.models[0], config, client)
    with pytest.raises(AuthFailed) as caught:
        adapter.complete(request())
    assert caught.value.status == 401
    assert BAD not in str(caught.value) and other[:8] not in repr(caught.value)
    assert not has_credentials(config.models[0], config)
    with pytest.raises(AuthFailed, match="every configured key was refused"):
        adapter.complete(request())
    assert len(transport.seen) == 2  # nothing more was sent


def test_a_rotated_key_file_is_used_without_a_restart(
    sim: Any, recording: Any, tmp_path: Path
) -> None:
    client, transport = recording
    key_file = tmp_path / "openai.key"
    key_file.write_text(K1 + "\n", encoding="utf-8")
    config = config_for(sim, "openai", api_key_file=str(key_file))
    adapter = build_adapter(config.models[0], config, client)
    adapter.complete(request())
    key_file.write_text(K2 + "\n", encoding="utf-8")
    stamp = key_file.stat()
    os.utime(key_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    adapter.complete(request())
    assert transport.seen == [fingerprint(K1), fingerprint(K2)]

    # Same size, mtime put back: only SIGHUP makes the worker look again.
    k3 = K1.replace("one", "thr")
    key_file.write_text(k3 + "\n", encoding="utf-8")
    os.utime(key_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000))
    adapter.complete(request())
    assert transport.seen[-1] == fingerprint(K2)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert install_sighup_reload()
        os.kill(os.getpid(), signal.SIGHUP)
        adapter.complete(request())
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert transport.seen[-1] == fingerprint(k3)


def test_a_refused_file_key_comes_back_once_the_file_is_rotated(
    sim: Any, recording: Any, tmp_path: Path
) -> None:
    client, transport = recording
    key_file = tmp_path / "openai.key"
    key_file.write_text(BAD, encoding="utf-8")
    config = config_for(sim, "openai", api_key_file=str(key_file))
    adapter = build_adapter(config.models[0], config, client)
    with pytest.raises(AuthFailed):
        adapter.complete(request())
    key_file.write_text(K2 + "-rotated", encoding="utf-8")
    assert adapter.complete(request()).text
    assert transport.seen == [fingerprint(BAD), fingerprint(K2 + "-rotated")]


def test_a_key_that_bypassed_the_loader_still_never_leaks(sim: Any, recording: Any) -> None:
    """Defence in depth: a malformed key built into a target by hand (not through the loader)
    makes the HTTP layer fail with the header in its message; our error carries none of it."""
    import pickle

    from pydantic import SecretStr

    from workers.providers import REGISTRY
    from workers.providers.base import AdapterTarget

    client, _ = recording
    config = config_for(sim, "openai")
    broken = SecretStr(K1 + "\n")
    target = AdapterTarget(config.models[0], config.providers["openai"], broken)
    adapter = REGISTRY["openai"].for_target(target, client)
    with pytest.raises(ProviderUnavailable) as caught:
        adapter.complete(request())
    exc = caught.value
    texts = [str(exc), repr(exc), repr(pickle.dumps(exc)), repr(getattr(exc, "fields", {}))]
    for text in texts:
        for i in range(len(K1) - 7):
            assert K1[i : i + 8] not in text
    assert "Illegal header value" in str(exc) or "LocalProtocolError" in str(exc)
