"""`llmq serve` against the official `openai` SDK: upload, create, poll, download; cancel;
pagination; validation failure. Real worker processes and the simulator run the jobs."""

from __future__ import annotations

import json
from datetime import timedelta

import openai
from openai.types.chat import ChatCompletion
from sqlalchemy import func, select

from core.ledger.models import ApiBatch, Batch, Job

from .conftest import batch_lines, wait_status, write_lines


def test_upload_create_poll_download(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    served.rig.start(concurrency=4)
    client = served.client("team-a")
    path = write_lines(tmp_path / "in.jsonl", batch_lines(6))

    uploaded = client.files.create(file=path.open("rb"), purpose="batch")
    assert uploaded.bytes == path.stat().st_size and uploaded.filename == "in.jsonl"
    assert client.files.content(uploaded.id).content == path.read_bytes()
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly-summaries"},
    )
    assert batch.status == "in_progress" and batch.request_counts.total == 6
    done = wait_status(client, batch.id, {"completed", "failed"}, on_timeout=served.rig.logs)

    assert done.status == "completed", done
    assert done.request_counts.completed == 6 and done.request_counts.failed == 0
    assert done.metadata == {"job": "nightly-summaries"}
    assert done.error_file_id is None and done.output_file_id
    assert done.completed_at >= done.created_at and done.finalizing_at
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(x["custom_id"] for x in lines) == [f"req-{i}" for i in range(6)]
    completions = [ChatCompletion.model_validate(x["response"]["body"]) for x in lines]
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in lines)
    assert all(c.choices[0].message.content.startswith("sim:") for c in completions)
    assert done.usage.input_tokens == sum(c.usage.prompt_tokens for c in completions) > 0
    assert done.usage.output_tokens == sum(c.usage.completion_tokens for c in completions) > 0
    stats = served.rig.sim.stats()["providers"]["openai"]["models"]["m"]
    assert stats["served"] == 6 and stats["prompt_tokens"] == done.usage.input_tokens
    output = client.files.retrieve(done.output_file_id)
    assert output.purpose == "batch_output"
    # the input file is spent: a second batch over it is refused as OpenAI refuses it
    try:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    except Exception as exc:  # noqa: BLE001
        assert getattr(exc, "status_code", None) == 400, exc
    else:
        raise AssertionError("a used input file was accepted twice")
    # and a file of another purpose cannot be a batch's input
    err = _status_of(
        lambda: client.batches.create(
            input_file_id=output.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    )
    assert err == 400


def _status_of(call) -> int | None:  # type: ignore[no-untyped-def]
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - openai.APIStatusError and friends
        return getattr(exc, "status_code", None)
    return None


def test_cancel_keeps_finished_lines_and_reports_the_rest(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    served.rig.sim.configure("openai", latency_ms=300)
    served.rig.start(concurrency=1)
    client = served.client()
    path = write_lines(tmp_path / "in.jsonl", batch_lines(12))
    uploaded = client.files.create(file=path.open("rb"), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_status(client, batch.id, {"in_progress"})
    _wait_some_succeeded(served, 1)

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait_status(client, batch.id, {"cancelled"}, on_timeout=served.rig.logs)

    counts = done.request_counts
    assert counts.total == 12 and counts.completed >= 1 and counts.failed >= 1
    assert counts.completed + counts.failed == 12
    assert done.cancelling_at and done.cancelled_at
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert len(errors) == counts.failed
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    outputs = client.files.content(done.output_file_id).text.splitlines()
    assert len(outputs) == counts.completed
    assert served.rig.sim.stats()["total_requests"] == counts.completed  # nothing ran after
    assert _status_of(lambda: client.batches.cancel(batch.id)) is None  # idempotent


def _wait_some_succeeded(served, n: int) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + 30
    while served.rig.sim.stats()["total_requests"] < n:
        assert time.monotonic() < deadline, served.rig.logs()
        time.sleep(0.05)


def test_list_batches_and_files_with_pagination(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = served.client()
    created = []
    for i in range(5):
        path = write_lines(tmp_path / f"in{i}.jsonl", batch_lines(1, prefix=f"b{i}"))
        f = client.files.create(file=path.open("rb"), purpose="batch")
        created.append(
            client.batches.create(
                input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
            ).id
        )

    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == created[::-1][:2] and first.has_more
    second = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in second.data] == created[::-1][2:4]
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # SDK auto-paging
    files = list(client.files.list(limit=2))
    assert len(files) == 5 and all(f.purpose == "batch" for f in files)
    oldest_first = [f.id for f in client.files.list(limit=2, order="asc")]
    assert oldest_first == [f.id for f in files][::-1]
    assert client.files.delete(files[0].id).deleted
    assert len(list(client.files.list())) == 4


def test_a_bad_line_fails_the_batch_and_nothing_runs(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = served.client()
    lines: list = batch_lines(3)
    lines[1] = "{not json"
    lines[2]["body"]["model"] = "no-such-model"
    path = write_lines(tmp_path / "bad.jsonl", lines)
    uploaded = client.files.create(file=path.open("rb"), purpose="batch")

    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )

    assert batch.status == "failed" and batch.failed_at
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_request"),
        (3, "invalid_request"),
    ]
    assert "invalid JSON" in batch.errors.data[0].message
    assert "no-such-model" in batch.errors.data[1].message
    assert client.batches.retrieve(batch.id).status == "failed"
    with served.rig.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Job)) == 0


def test_bad_requests_answer_400_in_openai_shape(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    client = served.client()
    path = write_lines(tmp_path / "in.jsonl", batch_lines(1))
    f = client.files.create(file=path.open("rb"), purpose="batch")
    # /v1/embeddings is served since issue 17; /v1/completions is not
    for endpoint, window in (("/v1/completions", "24h"), ("/v1/chat/completions", "48h")):
        assert (
            _status_of(
                lambda e=endpoint, w=window: client.batches.create(
                    input_file_id=f.id, endpoint=e, completion_window=w
                )
            )
            == 400
        )
    headers = {"Authorization": f"Bearer {served.key('team-a')}"}
    with httpx.Client(base_url=served.url, headers=headers) as http:
        bad = http.post(
            "/files",
            content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n',
            headers={"Content-Type": "multipart/form-data; boundary=xyz"},
        )
        assert bad.status_code == 400
        assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
        assert http.post("/files", json={"file": "x"}).status_code == 400
        assert http.get("/batches", params={"limit": 0}).status_code == 400
        unknown = http.get("/nothing-here")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"
        wrong_purpose = http.post(
            "/files", files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "fine-tune"}
        )
        assert wrong_purpose.status_code == 400
        assert wrong_purpose.json()["error"]["param"] == "purpose"
    assert len(list(client.files.list())) == 1  # refused uploads left nothing behind


def test_a_batch_past_its_window_expires(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from core.ledger.models import ApiBatch

    client = served.client()  # no worker: nothing runs
    f = client.files.create(
        file=write_lines(tmp_path / "in.jsonl", batch_lines(3)).open("rb"), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.expires_at - batch.created_at == 24 * 3600
    with served.rig.engine.begin() as conn:  # 24 hours later
        conn.execute(
            update(ApiBatch)
            .where(ApiBatch.id == batch.id)
            .values(expires_at=ApiBatch.created_at - timedelta(seconds=1))
        )

    done = client.batches.retrieve(batch.id)

    assert done.status == "expired" and done.expired_at
    assert (done.request_counts.completed, done.request_counts.failed) == (0, 3)
    assert done.output_file_id is None
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [e["error"]["code"] for e in errors] == ["batch_expired"] * 3
    with served.rig.engine.connect() as conn:
        assert set(conn.execute(select(Job.state)).scalars()) == {"cancelled"}


def test_replicas_share_everything_through_postgres(make_serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    one, two = make_serve(), make_serve()
    one.rig.start(concurrency=4)
    key = one.key("team-r")
    c1 = openai.OpenAI(base_url=one.url, api_key=key, max_retries=0)
    c2 = openai.OpenAI(base_url=two.url, api_key=key, max_retries=0)
    lines = batch_lines(4)
    for line in lines:  # 4 lines of 400 kB: the file spans two stored chunks, a line the border
        line["body"]["messages"][1]["content"] = "word " * 80_000
    path = write_lines(tmp_path / "in.jsonl", lines)
    assert path.stat().st_size > 1 << 20

    f = c1.files.create(file=path.open("rb"), purpose="batch")
    assert c2.files.content(f.id).content == path.read_bytes()  # streamed back from chunks
    batch = c2.batches.create(
        input_file_id=f.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"llmq_max_cost_usd": "5"},
    )
    assert batch.request_counts.total == 4, batch.errors
    done = wait_status(c1, batch.id, {"completed", "failed"}, on_timeout=one.rig.logs)
    assert done.status == "completed"
    assert c2.batches.retrieve(batch.id).output_file_id == done.output_file_id
    assert len(c2.files.content(done.output_file_id).text.splitlines()) == 4
    with one.rig.engine.connect() as conn:  # the batch carries the key's tenant and budget
        row = conn.execute(
            select(Batch.tenant, Batch.max_cost_usd).join(ApiBatch, ApiBatch.batch_id == Batch.id)
        ).one()
    assert row.tenant == "team-r" and row.max_cost_usd == 5


def test_finalizing_a_large_batch_streams_every_line_into_the_files(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """2,500 results (more than one server-side cursor fetch, interleaved with the chunk
    inserts of the output file) land in the files in input order; no worker needed: the jobs
    are finished in the ledger directly."""
    from sqlalchemy import update

    client = served.client()
    n = 2500
    f = client.files.create(
        file=write_lines(tmp_path / "in.jsonl", batch_lines(n)).open("rb"), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    with served.rig.engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.line_no % 10 != 0)
            .values(state="succeeded", result={"text": "ok", "finish_reason": "stop"},
                    served_model="m-1", prompt_tokens=7, completion_tokens=2)
        )  # fmt: skip
        conn.execute(
            update(Job)
            .where(Job.line_no % 10 == 0)
            .values(state="failed", error={"type": "bad_request", "message": "refused"})
        )

    done = wait_status(client, batch.id, {"completed"}, timeout_s=30)

    assert (done.request_counts.completed, done.request_counts.failed) == (2250, 250)
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    err = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert [x["custom_id"] for x in out] == [f"req-{i}" for i in range(n) if (i + 1) % 10]
    assert [x["custom_id"] for x in err] == [f"req-{i}" for i in range(9, n, 10)]
    assert {x["error"]["code"] for x in err} == {"bad_request"}
    assert {x["response"]["body"]["model"] for x in out} == {"m-1"}


def test_embeddings_batch(make_serve, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 17: a `/v1/embeddings` batch runs; its output lines parse as the SDK's
    CreateEmbeddingResponse; a chat line in it fails the batch with its line number."""
    from openai.types import CreateEmbeddingResponse

    models = [{"name": "emb", "provider": "openai", "mode": "embedding", "dimensions": 16}]
    served = make_serve(models=models)
    served.rig.start(concurrency=2)
    client = served.client("team-a")
    lines = [
        {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "emb", "input": [f"text {i}", f"more {i}"]}}
        for i in range(3)
    ]  # fmt: skip
    uploaded = client.files.create(
        file=write_lines(tmp_path / "emb.jsonl", lines).open("rb"), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_status(client, batch.id, {"completed", "failed"}, on_timeout=served.rig.logs)
    assert done.status == "completed" and done.request_counts.completed == 3, done
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    bodies = {x["custom_id"]: CreateEmbeddingResponse.model_validate(x["response"]["body"])
              for x in out}  # fmt: skip
    assert [len(d.embedding) for d in bodies["e1"].data] == [16, 16]
    assert bodies["e1"].usage.prompt_tokens > 0 and bodies["e1"].model

    mixed = write_lines(tmp_path / "mixed.jsonl", [lines[0], *batch_lines(1, "emb")])
    bad = client.batches.create(
        input_file_id=client.files.create(file=mixed.open("rb"), purpose="batch").id,
        endpoint="/v1/embeddings",
        completion_window="24h",
    )
    assert bad.status == "failed"
    assert [e.line for e in bad.errors.data] == [2], bad.errors
