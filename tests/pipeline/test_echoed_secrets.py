"""A provider that echoes secrets back stores none of them (issue 20, item 4).

A hostile endpoint on 127.0.0.1 echoes the API key and a configured gateway header, whole and
in part, in 401 and 500 bodies, in error codes, in `x-request-id` and in a 200's id and text.
Jobs run through `run_job` on the real ledger; then the whole database, the exceptions (str,
repr, pickle) of a direct call and `get_provider_status()` are searched for every 8-character
window of every secret.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from helpers.jobs import seed
from helpers.llm_config import model
from sqlalchemy import MetaData, select

from core.errors import LLMProviderError
from schemas.config import LLMConfig
from workers.pipeline import run_job
from workers.providers import LLMProviderManager

KEY = "sk-echo-Kq8Wz3Lp5Rt7Yv9Xb2Nm4"
GATEWAY = "gw-secret-Hd6Fj8Gk1Ls3Qa5"
SECRETS = (KEY, GATEWAY)


def windows(secret: str) -> list[str]:
    return [secret[i : i + 8] for i in range(len(secret) - 7)]


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        for w in windows(secret):
            assert w not in text, f"{w!r} (from a secret) found in {where}"


class Hostile:
    """An OpenAI-shaped endpoint whose model name picks how it echoes secrets back."""

    def __init__(self) -> None:
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests += 1
                key = self.headers.get("authorization", "").removeprefix("Bearer ")
                gateway = self.headers.get("x-gateway-token", "")
                status, headers, payload = outer.reply(body["model"], key, gateway)
                data = payload.encode()
                self.send_response(status)
                for name, value in {**headers, "content-length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def reply(mode: str, key: str, gateway: str) -> tuple[int, dict[str, str], str]:
        as_json = {"content-type": "application/json"}
        if mode == "echo401":
            err = {
                "message": f"Incorrect API key provided: {key}. Gateway token {gateway[:-3]}.",
                "code": key[:-2],
                "type": "invalid_request_error",
            }
            return 401, {**as_json, "x-request-id": f"req_{key}"}, json.dumps({"error": err})
        if mode == "echo500":
            page = f"<html><body>upstream saw Bearer {key[:-4]} and x-gateway-token={gateway}"
            return 500, {"content-type": "text/html", "x-request-id": key[2:20]}, page
        reply = {
            "id": f"chatcmpl-{key[3:19]}",
            "object": "chat.completion",
            "model": mode,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"your key: {key[:-1]}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
        }
        return 200, {**as_json, "x-request-id": f"id-{gateway[1:12]}"}, json.dumps(reply)


@pytest.fixture()
def hostile() -> Iterator[Hostile]:
    h = Hostile()
    yield h
    h.server.shutdown()


def provider_block(url: str) -> dict[str, Any]:
    return {"openai": {"api_base": url, "api_key": KEY, "headers": {"x-gateway-token": GATEWAY}}}


def dump_database(engine: Any) -> str:
    meta = MetaData()
    meta.reflect(engine)
    lines = []
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                lines.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(lines)


def test_echoed_secrets_reach_no_ledger_row(make_runtime, hostile) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(
        [model(m, "openai") for m in ("echo401", "echo500", "echo200")],
        providers=provider_block(hostile.url),
        routing={"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
    )
    job_ids = [seed(rt.engine, 1, m)[1][0] for m in ("echo401", "echo500", "echo200")]
    for jid in job_ids:
        for _ in range(8):
            out = run_job(jid, rt, datetime.now(UTC))
            if out.countdown_s is None:
                break
            time.sleep(out.countdown_s)
    dump = dump_database(rt.engine)
    assert hostile.requests >= 3
    assert "succeeded" in dump and "failed" in dump  # the jobs did finish, one way or another
    assert "[REDACTED]" in dump
    assert_clean(dump, "the database")


def test_echoed_secrets_reach_no_exception_or_status(hostile) -> None:  # type: ignore[no-untyped-def]
    config = LLMConfig.model_validate(
        {
            "providers": provider_block(hostile.url),
            "models": [{"name": m, "provider": "openai"} for m in ("echo401", "echo500", "ok")],
        }
    )
    manager = LLMProviderManager(config=config, env={}, max_retries=1)
    try:
        for name in ("echo401", "echo500"):
            with pytest.raises(LLMProviderError) as caught:
                manager.call_model(model_name=name, prompt="hi")
            exc = caught.value
            back = pickle.loads(pickle.dumps(exc))
            texts = [str(exc), repr(exc), str(back), repr(back), repr(pickle.dumps(exc))]
            texts += [repr(getattr(e, "fields", {})) for e in (exc, back)]
            assert_clean("\n".join(texts), f"the {name} exception")
        result = manager.call_model(model_name="ok", prompt="hi")
        assert_clean(json.dumps(result, default=str), "a direct call's result")
        status = manager.get_provider_status("openai")
        assert status["last_error"]
        assert_clean(json.dumps(status, default=str), "get_provider_status")
    finally:
        manager.close()
