"""The task wraps each run in the heartbeat's `holding`: the claim records the process's worker
id and takes the short heartbeat lease (issue 20, item 11), and the job is let go afterwards."""

from __future__ import annotations

from helpers.jobs import seed
from helpers.llm_config import model
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.ledger.models import Job
from workers.heartbeat import start_heartbeat
from workers.runtime import set_runtime
from workers.tasks import process_job


def test_the_task_claims_for_its_worker_under_the_heartbeat(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai")])
    rt.heartbeat = start_heartbeat(rt.sessions, rt.settings)
    previous = set_runtime(rt)
    try:
        _, [jid] = seed(rt.engine, 1, "m")
        assert process_job.run(str(jid)) == "succeeded"
        assert not rt.heartbeat.holds(jid)
        with Session(rt.engine) as s:
            worker_id = s.scalar(select(Job.worker_id).where(Job.id == jid))
        assert worker_id == rt.heartbeat.worker_id
    finally:
        set_runtime(previous)
        rt.heartbeat.stop()
