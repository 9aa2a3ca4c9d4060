"""`run_job` with the request surface of issue 15, in-process against the simulator: features
reach the provider, the output check fails unusable replies (invalid_output, refused) as billed
attempts, routing fails a job no deployment can serve naming the feature, and a cache hit
answers with the original's tool calls and parsed JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from helpers.llm_config import model
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import cache_key as cache
from core.errors import RateLimited
from core.ledger import batch_reads_repo, batch_submit_repo
from core.ledger.batch_submit_repo import NewBatch
from core.ledger.db import session_scope
from core.ledger.models import Attempt, Job
from schemas.job import ChatMessage, JobSpec
from schemas.request import Features
from workers.pipeline import Outcome, run_job

PRICED = {"temperature": 0, "input_cost_per_mtok": "1", "output_cost_per_mtok": "2"}
DEARER = {"temperature": 0, "input_cost_per_mtok": "3", "output_cost_per_mtok": "9"}
SCHEMA = {
    "type": "object",
    "properties": {"total": {"type": "number"}},
    "required": ["total"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"response_format": {"type": "json_schema", "json_schema": {"name": "inv", "schema": SCHEMA}}}  # fmt: skip
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
FORCED = {"tools": [TOOL], "tool_choice": "required"}
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="  # fmt: skip


def now() -> datetime:
    return datetime.now(UTC)


def submit(rt, content: Any, features: dict[str, Any], n: int = 1) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    specs = [
        JobSpec(
            custom_id=f"c{i}",
            model="m",
            messages=[ChatMessage.model_validate({"role": "user", "content": content})],
            features=Features.model_validate(features),
        )
        for i in range(n)
    ]
    keys = cache.keys_for(specs, rt.config, True)
    with session_scope(rt.sessions) as s:
        batch = NewBatch(tenant="default", use_cache=True)
        _, ids = batch_submit_repo.insert_batch_with_jobs(s, batch, specs, now(), keys)
    return ids


def job_of(rt, job_id: uuid.UUID) -> Job:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        return s.get_one(Job, job_id)


def attempts_of(rt, job_id: uuid.UUID) -> list[Attempt]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        stmt = select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.attempt_no)
        return list(s.scalars(stmt))


def result_lines(rt, job_id: uuid.UUID) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with Session(rt.engine) as s:
        batch_id = s.get_one(Job, job_id).batch_id
        return list(batch_reads_repo.iter_results(s, batch_id))


def test_features_reach_the_provider_and_the_result(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)])
    [json_job] = submit(rt, "Give the total as json.", {**JSON_SCHEMA, "sampling": {"seed": 3}})
    [tool_job] = submit(rt, "Weather in Oslo?", FORCED)
    assert run_job(json_job, rt, now()) == Outcome("succeeded")
    assert run_job(tool_job, rt, now()) == Outcome("succeeded")

    first, second = (e["request"] for e in sim.requests())
    assert first["features"]["schema"] == SCHEMA and first["features"]["seed"] == 3
    assert second["features"]["tool_choice"] == "required"
    [line] = result_lines(rt, json_job)
    assert isinstance(line["response"]["parsed"]["total"], int | float)
    assert line["response"]["tool_calls"] == []
    [line] = result_lines(rt, tool_job)
    [call] = line["response"]["tool_calls"]
    assert call["name"] == "get_weather" and isinstance(call["arguments"], str)
    assert line["response"]["parsed"] is None


def test_a_cache_hit_answers_with_the_same_tool_calls_and_parsed_json(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "openai", **PRICED)])
    for features in (FORCED, JSON_SCHEMA):
        first, again = submit(rt, f"Same question {len(features)}", features, n=2)
        assert run_job(first, rt, now()) == Outcome("succeeded")
        assert run_job(again, rt, now()) == Outcome("succeeded")
        assert [a.outcome for a in attempts_of(rt, again)] == ["cache_hit"]
        original, hit = result_lines(rt, first)
        assert hit["response"]["tool_calls"] == original["response"]["tool_calls"]
        assert hit["response"]["parsed"] == original["response"]["parsed"]
        assert hit["response"]["tool_calls"] or hit["response"]["parsed"] is not None
    assert sim.stats()["total_requests"] == 2


def test_invalid_json_moves_to_the_other_deployment(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(
        [
            model("m", "openai", model_id="gpt-4o-mini", **PRICED),
            model("m", "anthropic", model_id="claude-haiku-4-5", **DEARER),
        ]
    )
    sim.configure("openai", rate_invalid_json=1.0)
    [job] = submit(rt, "Total as json, please.", JSON_SCHEMA)
    assert run_job(job, rt, now()).status == "fallback"
    assert run_job(job, rt, now()) == Outcome("succeeded")
    bad, good = attempts_of(rt, job)
    assert (bad.provider, bad.outcome, bad.error_kind, bad.http_status) == ("openai", "failed", "invalid_output", 200)  # fmt: skip
    assert bad.prompt_tokens > 0 and bad.cost_usd > 0  # billed, recorded
    assert (good.provider, good.outcome) == ("anthropic", "succeeded")


def test_a_refusal_fails_at_once_as_refused(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime(
        [
            model("m", "openai", model_id="gpt-4o-mini", **PRICED),
            model("m", "anthropic", model_id="claude-haiku-4-5", **DEARER),
        ]
    )
    sim.configure("openai", rate_refusal=1.0)
    [job] = submit(rt, "Total as json, please.", JSON_SCHEMA)
    assert run_job(job, rt, now()) == Outcome("failed")
    row = job_of(rt, job)
    assert row.error["type"] == "refused" and "refused" in row.error["message"]
    assert row.error["raw"]["refusal"]
    [attempt] = attempts_of(rt, job)
    assert attempt.error_kind == "refused" and attempt.prompt_tokens > 0


def test_no_deployment_supports_the_feature_names_it(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    rt = make_runtime([model("m", "cohere", model_id="command-a-03-2025", **PRICED)])
    image = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": PNG}}]  # fmt: skip
    [job] = submit(rt, image, {})  # stored directly: the submit-time check is not run here
    assert run_job(job, rt, now()) == Outcome("failed")
    row = job_of(rt, job)
    assert row.error == {"type": "no_deployment", "message": "no deployment of m supports vision", "status": None, "provider": None}  # fmt: skip
    assert row.attempts == 0 and sim.stats()["total_requests"] == 0


def test_only_a_capable_deployment_is_waited_for(make_runtime, sim) -> None:  # type: ignore[no-untyped-def]
    """An image job: the vision deployment cooling down is waited for; once it is excluded for
    the job, the text-only deployment's cooldown is not, and the error says why."""
    rt = make_runtime(
        [
            model("m", "openai", model_id="gpt-4o-mini", **PRICED),
            model("m", "cohere", model_id="command-a-03-2025", **PRICED),
        ]
    )
    image = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": PNG}}]  # fmt: skip
    [job] = submit(rt, image, {})
    t = now()
    policy = rt.config.routing
    rt.health.record_failure("openai/gpt-4o-mini", RateLimited("429", retry_after=30.0), t.timestamp(), policy)  # fmt: skip
    assert run_job(job, rt, t).status == "waiting"

    with Session(rt.engine) as s, s.begin():
        row = s.get_one(Job, job)
        row.routing_state = {"excluded": ["openai/gpt-4o-mini"]}
        row.not_before = None
    rt.health.record_failure("cohere/command-a-03-2025", RateLimited("429", retry_after=30.0), t.timestamp(), policy)  # fmt: skip
    assert run_job(job, rt, now()) == Outcome("failed")
    message = job_of(rt, job).error["message"]
    assert "openai/gpt-4o-mini: failed for this job" in message
    assert "cohere/command-a-03-2025: does not support vision" in message
    assert sim.stats()["total_requests"] == 0
