"""A poller in its own process, for the SIGKILL test: `python poll_proc.py DB_URL CONFIG`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from schemas.settings import Settings
from tests.helpers.llm_config import load_test_config
from workers.lanes.poll import poll_once
from workers.runtime import build_runtime

if __name__ == "__main__":
    settings = Settings(database_url=sys.argv[1], broker_url="redis://127.0.0.1:1/0", embedded=True)
    rt = build_runtime(settings, load_test_config(Path(sys.argv[2])), concurrency=2)
    print("polling", flush=True)
    print(poll_once(rt, datetime.now(UTC)), flush=True)
