"""A real worker re-reads its key file without a restart (issue 20, keys with rotation).

The worker's only OpenAI key is a file (a Docker/Kubernetes secret). A job succeeds; the file
is replaced by a key the simulator refuses (it refuses keys starting with `bad`) and the next
job fails auth, so the worker read the new file; the file gets a good key again and a SIGHUP
makes the worker look at once: the same process (not restarted) serves the next job.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from helpers.jobs import wait_settled
from helpers.llm_config import load_test_config, model
from sqlalchemy import text

from producer.client import Client
from simulator.server import API_BASES

GOOD = "sk-file-good-1a2b3c4d5e"
BAD = "bad-file-key-6f7a8b9c0d"
NEW = "sk-file-new-22b3c4d5e6f"  # as long as BAD: same size


def run_one(client: Client, rig, name: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    source = rig.tmp_path / f"{name}.jsonl"
    source.write_text(json.dumps({"custom_id": name, "prompt": "hello"}) + "\n")
    batch_id = client.submit(source, name=name)
    return wait_settled(rig.engine, batch_id, timeout_s=60, on_timeout=rig.logs)


def write_key(path: Path, key: str, bump_ns: int) -> None:
    path.write_text(key + "\n", encoding="utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump_ns))


def test_worker_rereads_its_key_file_and_reloads_on_sighup(rig, sim) -> None:  # type: ignore[no-untyped-def]
    key_file = rig.tmp_path / "openai.key"
    write_key(key_file, GOOD, 0)
    openai = {"api_base": sim.url + API_BASES["openai"], "api_key_file": str(key_file)}
    config = rig.configure(
        [model("m", "openai", is_default=True)],
        providers={"openai": openai},
        routing={"max_attempts": 1},
    )
    [worker] = rig.start(concurrency=2)
    pid = worker.pid
    with Client(rig.database_url, rig.redis_url, load_test_config(config)) as client:
        assert run_one(client, rig, "first") == {"succeeded": 1}
        write_key(key_file, BAD, 10_000_000)
        assert run_one(client, rig, "second") == {"failed": 1}
        # Same size as BAD, mtime put back: only SIGHUP tells the worker to look again.
        stamp = key_file.stat()
        key_file.write_text(NEW + "\n", encoding="utf-8")
        os.utime(key_file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        os.kill(pid, signal.SIGHUP)
        time.sleep(0.5)
        assert run_one(client, rig, "third") == {"succeeded": 1}
    assert worker.alive() and worker.pid == pid
    assert sim.stats()["providers"]["openai"]["by_status"] == {"200": 2, "401": 1}
    logs = worker.logs()
    assert "sighup_reloads_keys=True" in logs
    with rig.engine.connect() as conn:
        stored = conn.execute(text("select error from jobs where state = 'failed'")).scalar()
    error = json.dumps(stored)
    assert "auth" in error.lower()
    for key in (GOOD, BAD, NEW):
        assert key[:8] not in logs and key[-8:] not in logs and key[-8:] not in error
