"""Submit-time capabilities (issue 15, Deliver 3) and the Python API for the request surface:
a line no deployment of its model or its fallbacks can serve is ``line N: no deployment of
MODEL supports FEATURE``; specs built in Python with `features=` pass the same rules."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from pydantic import ValidationError
from request_cases import CALL, PNG_URL, SCHEMA, TOOL, USER, both_formats
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.jsonl import InputError, check_specs, native_line, parse_lines
from core.ledger.models import Job
from producer.client import Client
from schemas.config import LLMConfig, LLMModelConfig
from schemas.job import ChatMessage, JobSpec
from schemas.request import (
    Feature,
    Features,
    ImagePart,
    ImageUrl,
    JsonSchemaFormat,
    NamedToolChoice,
    ResponseFormat,
    Sampling,
    TextPart,
    ToolCall,
    ToolSpec,
)

ALL = frozenset(Feature)
# A fake registry: what each provider's deployments honour in this test.
PROVIDER_CAPS = {
    "openai": ALL,
    "anthropic": ALL - {Feature.SEED, Feature.PENALTIES, Feature.BLANK_STOP},
    "cohere": ALL - {Feature.JSON_WITH_TOOLS, Feature.VISION, Feature.IMAGE_URL},
    "local": frozenset({Feature.STOP, Feature.SEED}),
    "google": frozenset({Feature.TOOLS}),
    "huggingface": frozenset({Feature.VISION}),
}
CFG = LLMConfig.model_validate(
    {
        "models": [
            {"name": "gpt", "provider": "openai", "is_default": True},
            {"name": "claude", "provider": "anthropic"},
            {"name": "command", "provider": "cohere"},
            {"name": "tiny", "provider": "local"},
            {"name": "split", "provider": "google"},  # tools only
            {"name": "split", "provider": "huggingface"},  # vision only
        ],
        "fallbacks": {"tiny": ["claude"], "command": ["claude"]},
    }
)


class FakeCapabilities:
    """Counts its calls, so memoisation is visible."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, deployment: LLMModelConfig) -> frozenset[Feature]:
        self.calls[deployment.deployment_id] += 1
        return PROVIDER_CAPS[deployment.provider.value]


def line(model: str, **fields: Any) -> str:
    return json.dumps(
        {"custom_id": f"c-{model}-{len(fields)}", "model": model, "messages": [USER], **fields}
    )


IMAGE = [
    {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}],
    }
]

# (id, model, line fields, reason or None = accepted)
CASES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("plain needs nothing", "tiny", {}, None),
    ("openai serves all", "gpt", {"seed": 1, "tools": [TOOL], "tool_choice": "required"}, None),
    ("missing seed", "claude", {"seed": 1}, "no deployment of claude supports seed"),
    (
        "blank stop",
        "claude",
        {"stop": ["END", " \n"]},
        "no deployment of claude supports blank_stop",
    ),
    ("stop with spaces inside", "claude", {"stop": [" END "]}, None),
    ("blank stop elsewhere", "gpt", {"stop": "\n"}, None),
    (
        "missing penalties after others",
        "claude",
        {"presence_penalty": 1, "stop": "x", "tools": [TOOL]},
        "no deployment of claude supports penalties",
    ),
    ("fallback serves json", "tiny", {"response_format": {"type": "json_object"}}, None),
    (
        "fallbacks checked too",
        "tiny",
        {"stop": "x", "frequency_penalty": 1},
        "no deployment of tiny supports penalties (fallbacks checked: claude)",
    ),
    ("own deployment serves seed", "tiny", {"seed": 3, "stop": ["a"]}, None),
    (
        "json with tools on cohere falls back to claude",
        "command",
        {"tools": [TOOL], "response_format": {"type": "json_object"}},
        None,
    ),
    (
        "the deployment with seed lacks json with tools, the fallback with it lacks seed",
        "command",
        {"tools": [TOOL], "response_format": {"type": "json_object"}, "seed": 5},
        "no deployment of command supports seed together with json_with_tools "
        "(fallbacks checked: claude)",
    ),
    (
        "image via the fallback",
        "command",
        {"messages": IMAGE},
        None,
    ),
    (
        "each feature somewhere, never together",
        "split",
        {"tools": [TOOL], "messages": IMAGE},
        "no deployment of split supports vision together with tools",
    ),
    ("tools on split", "split", {"tools": [TOOL]}, None),
    (
        "image url needs its own feature",
        "split",
        {"messages": IMAGE},
        "no deployment of split supports image_url",
    ),
    (
        "tool history needs tools",
        "tiny",
        {
            "seed": 1,
            "messages": [
                USER,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "x"},
            ],
        },
        "no deployment of tiny supports seed together with tools (fallbacks checked: claude)",
    ),
]


@pytest.mark.parametrize(
    ("model", "fields", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_capabilities_at_submit(model: str, fields: dict[str, Any], reason: str | None) -> None:
    lines = [(1, json.dumps({"custom_id": "ok", "prompt": "p"})), (2, line(model, **fields))]
    if reason is None:
        assert len(parse_lines(lines, CFG, capabilities=FakeCapabilities())) == 2
        return
    with pytest.raises(InputError) as info:
        parse_lines(lines, CFG, capabilities=FakeCapabilities())
    assert info.value.errors == [f"line 2: {reason}"]
    # without a capabilities function the same line is accepted (workers route it)
    assert len(parse_lines(lines, CFG)) == 2


def test_both_formats_are_checked() -> None:
    native, openai = both_formats("s", {"model": "claude", "messages": [USER], "seed": 1})
    with pytest.raises(InputError) as info:
        parse_lines([(1, native), (2, openai)], CFG, capabilities=FakeCapabilities())
    assert info.value.errors == [
        "line 1: no deployment of claude supports seed",
        "line 2: no deployment of claude supports seed",
    ]


def test_capabilities_are_asked_once_per_deployment_and_never_for_plain_lines() -> None:
    caps = FakeCapabilities()
    plain = [
        (i, json.dumps({"custom_id": f"p{i}", "model": "claude", "prompt": "p"}))
        for i in range(1, 50)
    ]
    parse_lines(plain, CFG, capabilities=caps)
    assert caps.calls == Counter()
    featured = [(i, line("tiny", stop="x").replace('"c-tiny-1"', f'"f{i}"')) for i in range(1, 50)]
    parse_lines(featured, CFG, capabilities=caps)
    assert caps.calls == Counter({"local/tiny": 1, "anthropic/claude": 1})


# ---- the Python API: specs built with features= ------------------------------------------


def full_spec(custom_id: str = "py-1", model: str = "gpt") -> JobSpec:
    return JobSpec(
        custom_id=custom_id,
        model=model,
        messages=[
            ChatMessage(
                role="user",
                content=(
                    TextPart(text="What is on it?"),
                    ImagePart(image_url=ImageUrl(url=PNG_URL)),
                ),
            ),
            ChatMessage(
                role="assistant", content=None, tool_calls=(ToolCall.model_validate(CALL),)
            ),
            ChatMessage(role="tool", tool_call_id="call_1", content="12 C"),
        ],
        max_tokens=200,
        features=Features(
            response_format=ResponseFormat(
                type="json_schema", json_schema=JsonSchemaFormat(name="inv", json_schema=SCHEMA)
            ),
            tools=(ToolSpec.model_validate(TOOL),),
            tool_choice=NamedToolChoice.model_validate(
                {"type": "function", "function": {"name": "get_weather"}}
            ),
            parallel_tool_calls=False,
            sampling=Sampling(stop="END", top_p=0.5, seed=9, user="me"),
        ),
    )


def test_python_specs_with_features_pass_the_same_rules_unchanged() -> None:
    spec = full_spec()
    [checked] = check_specs([spec], CFG, capabilities=FakeCapabilities())
    assert checked == spec
    assert native_line(spec)["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {
                "features": Features(
                    response_format=ResponseFormat(
                        type="json_schema",
                        json_schema=JsonSchemaFormat(name="x", json_schema={"type": "objekt"}),
                    )
                )
            },
            "line 1: response_format.json_schema.schema: not a valid JSON Schema: 'objekt' is not valid under any of the given schemas (at type)",
        ),
        (
            {
                "messages": [
                    ChatMessage(
                        role="user",
                        content=(ImagePart(image_url=ImageUrl(url="data:image/png;base64,AAAA")),),
                    )
                ]
            },
            "line 1: messages[0].content[0].image_url.url: the data is not a PNG image (check the media type)",
        ),
        (
            {
                "messages": [
                    ChatMessage(role="tool", tool_call_id="nope", content="x"),
                    ChatMessage(role="user", content="q"),
                ]
            },
            "line 1: messages[0].tool_call_id: 'nope' is not the id of an earlier assistant tool call",
        ),
        ({"model": "claude"}, "line 1: no deployment of claude supports seed"),
    ],
    ids=["schema", "image", "tool id", "capability"],
)
def test_python_specs_are_rejected_like_lines(change: dict[str, Any], reason: str) -> None:
    spec = full_spec().model_copy(update=change)
    with pytest.raises(InputError) as info:
        check_specs([spec], CFG, capabilities=FakeCapabilities())
    assert info.value.errors == [reason]


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: Features(tool_choice="auto"), "tool_choice is given without tools"),
        (lambda: Features(parallel_tool_calls=True), "parallel_tool_calls is given without tools"),
        (
            lambda: Features(
                tools=(ToolSpec.model_validate(TOOL),), tool_choice=NamedToolChoice(name="x")
            ),
            "'x', which is not in tools",
        ),
        (
            lambda: Features(tools=(ToolSpec.model_validate(TOOL),) * 2),
            "function names must be unique",
        ),
        (lambda: Features(tools=()), "at least 1 item"),
        (lambda: Sampling(stop=["a", "b", "c", "d", "e"]), "at most 4 items"),
        (lambda: Sampling(stop=[""]), "at least 1 character"),
        (lambda: ResponseFormat(type="json_schema"), "json_schema is required"),
        (lambda: ChatMessage(role="tool", content="x"), "a tool message needs tool_call_id"),
        (lambda: ChatMessage(role="user", content=None), "content may be null only"),
        (
            lambda: ChatMessage(
                role="user", content="x", tool_calls=(ToolCall.model_validate(CALL),)
            ),
            "only for assistant",
        ),
        (
            lambda: ChatMessage(
                role="assistant", content=(ImagePart(image_url=ImageUrl(url=PNG_URL)),)
            ),
            "only for user",
        ),
        (lambda: ImageUrl(url="http://example.com/a.png"), "should match pattern"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_models_refuse_inconsistent_requests_when_built(build: Any, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        build()
    assert fragment in str(info.value)


def test_client_submit_checks_capabilities_and_stores_features(
    clean_db: str, redis_url: str, engine: Engine
) -> None:
    with Client(clean_db, redis_url, CFG, env={}, capabilities=FakeCapabilities()) as client:
        with pytest.raises(InputError) as info:
            client.submit([full_spec("ok"), full_spec("bad", model="claude")])
        assert info.value.errors == ["line 2: no deployment of claude supports seed"]

        plain = JobSpec(custom_id="plain", messages=[ChatMessage(role="user", content="hi")])
        batch_id = client.submit([full_spec("ok"), plain])
    with Session(engine) as s:
        jobs = list(s.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.line_no)))
    assert [j.custom_id for j in jobs] == ["ok", "plain"]
    assert JobSpec(**jobs[0].spec, custom_id="ok", model=jobs[0].model) == full_spec("ok")
    assert jobs[1].spec == {
        "messages": [{"role": "user", "content": "hi"}],
        "system": None,
        "max_tokens": None,
        "temperature": None,
        "metadata": {},
        "cache": True,
    }
