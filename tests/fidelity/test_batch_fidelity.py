"""Issue 15, end to end: one OpenAI Batch file using structured output, tools (forced, required
and auto), tool-result history, stop, seed and an image, submitted unchanged and run by a real
Celery worker process against each of the six providers (simulated), one provider per run.

Asserted per provider: the lines the provider cannot honour are rejected at submit as
``line N: no deployment of m supports FEATURE``; every other line succeeds; every JSON result
validates against its schema; forced tools were called with valid arguments; the simulator's
request log shows that nothing a line asked for was dropped on the way; and no attempt used
more than its quota reservation.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from helpers.jobs import wait_settled
from helpers.llm_config import SIM_PROVIDERS, load_test_config, model
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jsonl import InputError
from core.ledger.models import Attempt, Job
from producer.client import Client
from tests.fidelity.batch_file import LINES, TOOL_PARAMS, Expect, write_batch
from workers.providers import capabilities_of

MODEL_IDS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.5-flash",
    "cohere": "command-a-03-2025",
    "huggingface": "openai/gpt-oss-120b",
    "local": "llama3.1",
}
# What each provider's built-in capabilities cannot honour in the file (line -> feature).
REJECTED: dict[str, dict[int, str]] = {
    "openai": {},
    "anthropic": {8: "seed"},
    "google": {10: "json_with_tools"},
    "cohere": {9: "vision", 10: "json_with_tools"},
    "huggingface": {},
    "local": {},
}
PRICES = {"input_cost_per_mtok": "0.5", "output_cost_per_mtok": "1.5"}


@pytest.mark.parametrize("provider", SIM_PROVIDERS)
def test_one_batch_file_runs_unchanged_on_each_provider(rig, sim, provider: str) -> None:  # type: ignore[no-untyped-def]
    assert set(MODEL_IDS) == set(SIM_PROVIDERS)
    path = rig.configure([model("m", provider, model_id=MODEL_IDS[provider], is_default=True, **PRICES)])  # fmt: skip
    cfg = load_test_config(path)
    rig.start(concurrency=4)
    every = list(range(1, len(LINES) + 1))
    rejected = REJECTED[provider]
    served = [n for n in every if n not in rejected]

    def caps(dep):  # type: ignore[no-untyped-def]
        return capabilities_of(dep, cfg)

    with Client(rig.database_url, rig.redis_url, cfg, capabilities=caps) as client:
        full = write_batch(rig.tmp_path / "full.jsonl", every, "m")
        if rejected:
            with pytest.raises(InputError) as err:
                client.submit(full)
            assert err.value.errors == [
                f"line {n}: no deployment of m supports {feature}"
                for n, feature in sorted(rejected.items())
            ]
            source = write_batch(rig.tmp_path / "served.jsonl", served, "m")
        else:
            source = full
        batch_id = client.submit(source, name=f"fidelity-{provider}")
        counts = wait_settled(rig.engine, batch_id, timeout_s=90, on_timeout=rig.logs)
        results = {r["custom_id"]: r for r in client.iter_results(batch_id)}

    assert counts == {"succeeded": len(served)}, _failures(results)
    entries = sim.requests(limit=1000)
    for n in served:
        expect = LINES[n - 1][1]
        response = results[f"line-{n}"]["response"]
        _check_result(n, expect, response)
        _check_nothing_dropped(n, expect, _request_for(n, entries))
    _check_reservations(rig.engine)


def _failures(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {k: r["error"] for k, r in results.items() if r["status"] != "succeeded"}


def _check_result(n: int, expect: Expect, response: dict[str, Any]) -> None:
    calls = response["tool_calls"]
    for call in calls:  # OpenAI's form: arguments are JSON text, never an object
        assert set(call) == {"id", "name", "arguments"}
        assert isinstance(call["arguments"], str)
        assert call["name"] in expect.tools, (n, call)
        jsonschema.validate(json.loads(call["arguments"]), TOOL_PARAMS[call["name"]])
    if expect.forced is not None:
        assert calls, f"line {n}: the tool was forced, the reply has no call"
        if expect.forced != "*":
            assert {c["name"] for c in calls} == {expect.forced}
    if expect.json and not calls:
        parsed = response["parsed"]
        assert parsed is not None, f"line {n}: JSON asked for, no parsed value"
        assert isinstance(parsed, dict)
        if expect.schema is not None:
            jsonschema.validate(parsed, expect.schema)
    elif not expect.json:
        assert response["parsed"] is None
    for stop in expect.stop:
        assert stop not in response["text"]


def _request_for(n: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
    marker = f"[L{n}]"
    found = [e for e in entries if marker in json.dumps(e["request"]["body"])]
    assert found, f"line {n}: the simulator logged no request carrying {marker}"
    return found[-1]["request"]


def _check_nothing_dropped(n: int, expect: Expect, request: dict[str, Any]) -> None:
    """The simulator's neutral summary of what the provider was asked holds the line's ask."""
    got = request["features"]
    where = f"line {n}: {got}"
    trick = got["tool_choice"] not in ("auto", "none", "required", *expect.tools)
    if expect.json:  # native JSON mode, or a forced JSON tool where that is the provider's way
        assert got["json"] or trick, where
        if expect.schema is not None and not trick:
            assert got["schema"] is not None, where
    if expect.forced not in (None, "*"):
        # A named choice is native, or "required" limited to that tool (Gemini's
        # allowedFunctionNames), or "required" with only that tool offered (Cohere's way).
        name = expect.forced
        assert got["tool_choice"] == name or (
            got["tool_choice"] == "required"
            and (got["allowed_tools"] == [name] or got["tools"] == [name])
        ), where
    else:
        assert set(expect.tools) <= set(got["tools"]), where
        if expect.tool_choice is not None and not trick:
            assert got["tool_choice"] == expect.tool_choice, where
    assert got["stop"] == list(expect.stop), where
    assert got["seed"] == expect.seed, where
    assert got["images"] == expect.images, where
    calls, results = (1, 1) if expect.history else (0, 0)
    assert (got["history_tool_calls"], got["tool_results"]) == (calls, results), where


def _check_reservations(engine: Any) -> None:
    """Tools, schemas and images are inside the quota bound: no call used more than reserved."""
    with Session(engine) as s:
        rows = s.execute(
            select(Attempt.prompt_tokens, Attempt.completion_tokens, Attempt.reserved_tokens).join(
                Job, Job.id == Attempt.job_id
            )
        ).all()
    assert rows
    for prompt, completion, reserved in rows:
        assert prompt + completion <= reserved, (prompt, completion, reserved)
