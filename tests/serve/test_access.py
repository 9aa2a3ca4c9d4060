"""Keys and tenants of `llmq serve`: `llmq keys` CLI, 401 for missing/wrong/revoked keys, 404
(never 403) for another tenant's objects, keys stored only as hashes; and the 413 limit."""

from __future__ import annotations

import hashlib
import json

import httpx
import openai
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from core.ledger.models import ApiFile, ApiKey
from llmq.cli import app
from llmq.serve.settings import ServeSettings

from .conftest import batch_lines, write_lines


def _cli(db_url: str, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"LLMQ_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_keys_cli_create_list_revoke_and_401(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = served.rig.database_url
    made = json.loads(_cli(db, "keys", "create", "--tenant", "team-k", "--name", "ci", "--json"))
    assert set(made) == {"id", "key", "tenant", "name", "admin"} and made["tenant"] == "team-k"
    assert made["admin"] is False
    client = openai.OpenAI(base_url=served.url, api_key=made["key"], max_retries=0)
    assert client.batches.list().data == []

    listed = json.loads(_cli(db, "keys", "list", "--json"))
    assert [k["id"] for k in listed] == [made["id"]]
    assert made["key"] not in json.dumps(listed) and made["key"] not in _cli(db, "keys", "list")
    with served.rig.engine.connect() as conn:  # only a hash is stored
        stored = dict(conn.execute(select(*ApiKey.__table__.columns)).mappings().one())
    assert stored["key_hash"] == hashlib.sha256(made["key"].encode()).hexdigest()
    assert made["key"][-8:] not in repr(stored) and made["key"][5:13] not in repr(stored)

    _cli(db, "keys", "revoke", made["id"])
    with pytest.raises(openai.AuthenticationError) as revoked:
        client.batches.list()
    assert revoked.value.status_code == 401 and revoked.value.code == "invalid_api_key"
    wrong = openai.OpenAI(base_url=served.url, api_key="llmq-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.files.create(
            file=write_lines(tmp_path / "x.jsonl", ["{}"]).open("rb"), purpose="batch"
        )
    missing = httpx.get(served.url + "/batches")
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"
    with served.rig.engine.connect() as conn:  # the refused upload stored nothing
        assert conn.scalar(select(ApiFile.id)) is None


def test_another_tenants_objects_answer_404(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = served.client("team-a"), served.client("team-b")
    path = write_lines(tmp_path / "in.jsonl", batch_lines(2))
    f = a.files.create(file=path.open("rb"), purpose="batch")
    batch = a.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    calls = [
        lambda: b.files.retrieve(f.id),
        lambda: b.files.content(f.id),
        lambda: b.files.delete(f.id),
        lambda: b.batches.retrieve(batch.id),
        lambda: b.batches.cancel(batch.id),
        lambda: b.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        ),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.status_code == 404
    assert b.batches.list().data == [] and b.files.list().data == []
    assert list(b.batches.list(after=batch.id)) == []
    # and team-a still has all of it, untouched
    assert a.batches.retrieve(batch.id).status == "in_progress"
    assert a.files.content(f.id).content == path.read_bytes()


def test_uploads_over_the_limit_answer_413_and_store_nothing(make_serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    served = make_serve(ServeSettings(max_upload_bytes=100_000))
    client = served.client()
    big = write_lines(tmp_path / "big.jsonl", batch_lines(1200))  # ~250 kB
    assert big.stat().st_size > 200_000
    with pytest.raises(openai.APIStatusError) as err:  # refused from Content-Length
        client.files.create(file=big.open("rb"), purpose="batch")
    assert err.value.status_code == 413

    # without a Content-Length (chunked): refused while streaming, once the file passes the limit
    boundary = b"llmqboundary"
    head = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="b.jsonl"'
        b"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )

    def body():  # type: ignore[no-untyped-def]
        yield head
        for _ in range(40):
            yield b"x" * 8192  # 320 kB in total, never all in one place

    headers = {
        "Authorization": f"Bearer {served.key('team-a')}",
        "Content-Type": "multipart/form-data; boundary=" + boundary.decode(),
    }
    resp = httpx.post(served.url + "/files", content=body(), headers=headers)
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["code"] == "file_too_large"
    small = write_lines(tmp_path / "small.jsonl", batch_lines(3))
    ok = client.files.create(file=small.open("rb"), purpose="batch")  # under the limit: fine
    assert [x.id for x in client.files.list()] == [ok.id]  # nothing of the refused ones


def test_the_llmq_serve_command_serves_the_app(served) -> None:  # type: ignore[no-untyped-def]
    """`llmq serve` as a process: uvicorn's factory builds the app from the environment."""
    import os
    import subprocess
    import sys
    import time

    from .conftest import free_port

    port = free_port()
    env = dict(served.rig.env, LLMQ_SERVE_MAX_UPLOAD_BYTES="1234")
    argv = [sys.executable, "-m", "llmq.cli", "serve", "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(
        argv, env=env, cwd=os.path.dirname(str(served.rig.config_path)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()  # type: ignore[union-attr]
            time.sleep(0.1)
        client = openai.OpenAI(base_url=base + "/v1", api_key=served.key("p"), max_retries=0)
        assert client.batches.list().data == []
        with pytest.raises(openai.APIStatusError) as err:  # its settings came from the env
            client.files.create(file=("a.jsonl", b"x" * 70_000), purpose="batch")
        assert err.value.status_code == 413
    finally:
        proc.terminate()
        proc.wait(10)
