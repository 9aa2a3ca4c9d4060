"""core.jsonl: both line formats normalise to JobSpec; every bad-line class is reported
with its line number; any bad line rejects the file. Pure: no database or broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.jsonl import MAX_LINE_BYTES, InputError, parse_file
from schemas.config import LLMConfig
from schemas.job import ChatMessage

GOOD = {"custom_id": "good-1", "prompt": "Say hi"}
OPENAI = {
    "custom_id": "oa-1",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {
        "model": "m-other",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "max_tokens": 20,
        "temperature": 0,
    },
}

# (bad line, fragment of the reason). Each is written as line 3, after a good line and a blank.
BAD_LINES: list[tuple[str, str]] = [
    ('{"custom_id": "x", "prompt": "p"', "invalid JSON"),
    ("not json at all", "invalid JSON"),
    ('["custom_id", "x"]', "expected a JSON object"),
    ('"just a string"', "expected a JSON object"),
    ('{"custom_id": "x", "model": "gpt-nope", "prompt": "p"}', "unknown model 'gpt-nope'"),
    ('{"custom_id": "x", "model": 7, "prompt": "p"}', "model must be a non-empty string"),
    ('{"custom_id": "x"}', "missing text"),
    ('{"custom_id": "x", "prompt": "   "}', "missing text"),
    ('{"custom_id": "x", "messages": []}', "missing text"),
    ('{"custom_id": "x", "messages": [{"role": "system", "content": "s"}]}', "missing text"),
    (
        '{"custom_id": "x", "prompt": "p", "messages": [{"role": "user", "content": "q"}]}',
        "not both",
    ),
    ('{"custom_id": "x", "prompt": 12}', "prompt must be a string"),
    ('{"custom_id": "x", "messages": [{"role": "tool", "content": "q"}]}', "role"),
    ('{"custom_id": "x", "messages": [{"role": "function", "content": "q"}]}', "role"),
    (
        '{"custom_id": "x", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}',
        'content part "input_audio" is not supported',
    ),
    ('{"custom_id": "x", "messages": [{"role": "user", "content": "q", "name": "n"}]}', "name"),
    ('{"custom_id": "x", "messages": "hello"}', "must be a list"),
    (
        '{"custom_id": "good-1", "prompt": "again"}',
        "duplicate custom_id 'good-1' (first on line 1)",
    ),
    ('{"prompt": "p"}', "missing custom_id"),
    ('{"custom_id": 42, "prompt": "p"}', "custom_id must be a string"),
    ('{"custom_id": "", "prompt": "p"}', "custom_id is empty"),
    (json.dumps({"custom_id": "x" * 257, "prompt": "p"}), "longer than 256"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": 0}', "max_tokens must be between 1"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": -5}', "max_tokens must be between 1"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": 2000000}', "max_tokens must be between 1"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": 1.5}', "max_tokens must be an integer"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": 100.0}', "max_tokens must be an integer"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": "100"}', "max_tokens must be an integer"),
    ('{"custom_id": "x", "prompt": "p", "max_tokens": true}', "max_tokens must be an integer"),
    (
        '{"custom_id": "x", "prompt": "p", "temperature": 2.5}',
        "temperature must be between 0 and 2",
    ),
    (
        '{"custom_id": "x", "prompt": "p", "temperature": -0.1}',
        "temperature must be between 0 and 2",
    ),
    (
        '{"custom_id": "x", "prompt": "p", "temperature": 1e400}',
        "temperature must be between 0 and 2",
    ),
    ('{"custom_id": "x", "prompt": "p", "temperature": NaN}', "invalid JSON"),
    ('{"custom_id": "x", "prompt": "p", "temperature": false}', "temperature must be a number"),
    ('{"custom_id": "x", "prompt": "p", "temperature": "hot"}', "temperature must be a number"),
    ('{"custom_id": "x", "prompt": "p", "metadata": [1]}', "metadata must be an object"),
    ('{"custom_id": "x", "prompt": "p", "cache": "no"}', "cache must be true or false"),
    ('{"custom_id": "x", "prompt": "p", "system": 3}', "system must be a string"),
    ('{"custom_id": "x", "prompt": "p", "max_token": 5}', "unsupported field(s): max_token"),
    ('{"custom_id": "x", "prompt": "p\\u0000"}', "NUL"),
    ('{"custom_id": "x", "prompt": "p\\ud800"}', "surrogate"),
    (
        '{"custom_id": "x", "method": "GET", "url": "/v1/chat/completions", "body": {}}',
        'method must be "POST"',
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/completions", "body": {}}',
        'url must be "/v1/chat/completions"',
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions"}',
        "body must be an object",
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"messages": [{"role": "user", "content": "q"}], "logprobs": true}}',
        "unsupported field(s): body.logprobs",
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"messages": [{"role": "user", "content": "q"}], "n": 2}}',
        "body.n must be 1",
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"messages": [{"role": "user", "content": "q"}], "max_tokens": 0}}',
        "body.max_tokens must be between 1",
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{"model": "nope", "messages": [{"role": "user", "content": "q"}]}}',
        "unknown model 'nope'",
    ),
    (
        '{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {}}',
        "missing text",
    ),
]


@pytest.fixture()
def cfg() -> LLMConfig:
    return LLMConfig.model_validate(
        {
            "models": [
                {"name": "m-default", "provider": "openai", "is_default": True},
                {"name": "m-other", "provider": "anthropic"},
            ]
        }
    )


def write(path: Path, lines: list[str | bytes | dict]) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(line)
            f.write((line.encode() if isinstance(line, str) else line) + b"\n")
    return path


def rejected(path: Path, cfg: LLMConfig, **kw: object) -> InputError:
    with pytest.raises(InputError) as info:
        parse_file(path, cfg, **kw)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize(("line", "reason"), BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_line_is_reported_with_its_number(
    tmp_path: Path, cfg: LLMConfig, line: str, reason: str
) -> None:
    path = write(tmp_path / "in.jsonl", [GOOD, "", line, {"custom_id": "good-4", "prompt": "p"}])
    err = rejected(path, cfg)
    assert len(err.errors) == 1, err.errors
    assert err.errors[0].startswith("line 3: ")
    assert reason in err.errors[0]
    assert str(path) in str(err)  # the file is named in the header


def test_oversized_line_is_bad_and_reading_continues(tmp_path: Path, cfg: LLMConfig) -> None:
    huge = json.dumps({"custom_id": "big", "prompt": "x" * (MAX_LINE_BYTES + 10)})
    path = write(tmp_path / "in.jsonl", [GOOD, huge, "{broken"])
    err = rejected(path, cfg)
    assert err.errors == [
        f"line 2: line is longer than {MAX_LINE_BYTES} bytes",
        "line 3: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
    ]


def test_a_line_of_exactly_the_limit_is_accepted(tmp_path: Path, cfg: LLMConfig) -> None:
    head = '{"custom_id": "edge", "prompt": "'
    line = head + "x" * (MAX_LINE_BYTES - len(head) - 2) + '"}'
    assert len(line) == MAX_LINE_BYTES
    [spec] = parse_file(write(tmp_path / "in.jsonl", [line]), cfg)
    assert spec.custom_id == "edge"


def test_invalid_utf8_is_a_bad_line(tmp_path: Path, cfg: LLMConfig) -> None:
    path = write(tmp_path / "in.jsonl", [GOOD, b'{"custom_id": "x", "prompt": "\xff\xfe"}'])
    assert rejected(path, cfg).errors == ["line 2: not valid UTF-8 (byte 31)"]


@pytest.mark.parametrize("lines", [[], [""], ["", "   ", "\t"]], ids=["empty", "blank", "blanks"])
def test_empty_file_is_rejected(tmp_path: Path, cfg: LLMConfig, lines: list[str]) -> None:
    assert rejected(write(tmp_path / "in.jsonl", lines), cfg).errors == ["empty file: no job lines"]


def test_missing_file_is_an_input_error(tmp_path: Path, cfg: LLMConfig) -> None:
    err = rejected(tmp_path / "nope.jsonl", cfg)
    assert "cannot read file" in err.errors[0]


def test_errors_are_capped_with_a_count_of_the_rest(tmp_path: Path, cfg: LLMConfig) -> None:
    path = write(tmp_path / "in.jsonl", [GOOD] + ["{bad"] * 25)
    err = rejected(path, cfg)
    assert len(err.errors) == 21
    assert err.errors[0].startswith("line 2: ") and err.errors[19].startswith("line 21: ")
    assert err.errors[20] == "... and 5 more"
    assert err.bad_lines == 25 and "25 problems" in str(err)


def test_both_formats_normalise_to_job_specs(tmp_path: Path, cfg: LLMConfig) -> None:
    native = {
        "custom_id": "n-1",
        "model": "m-other",
        "system": "You are terse.",
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Bonjour"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "And"}, {"type": "text", "text": "bye?"}],
            },
        ],
        "max_tokens": 64,
        "temperature": 1,
        "metadata": {"ticket": 12, "tags": ["a"]},
        "cache": False,
    }
    path = write(tmp_path / "in.jsonl", ["\ufeff" + json.dumps(GOOD), "", native, OPENAI, "  "])
    good, n, oa = parse_file(path, cfg)

    assert (good.custom_id, good.model, good.system) == ("good-1", "m-default", None)
    assert good.messages == [ChatMessage(role="user", content="Say hi")]
    assert (good.max_tokens, good.temperature, good.metadata, good.cache) == (None, None, {}, True)

    assert n.model == "m-other"
    assert n.system == "You are terse.\n\nAnswer in French."
    assert [m.role for m in n.messages] == ["user", "assistant", "user"]
    assert n.messages[2].content == "And\nbye?"
    assert (n.max_tokens, n.temperature, n.cache) == (64, 1.0, False)
    assert n.metadata == {"ticket": 12, "tags": ["a"]}

    assert (oa.custom_id, oa.model, oa.system) == ("oa-1", "m-other", "Be brief.")
    assert oa.messages == [ChatMessage(role="user", content="What is 2+2?")]
    assert (oa.max_tokens, oa.temperature) == (20, 0.0)


def test_openai_max_completion_tokens_and_developer_role(tmp_path: Path, cfg: LLMConfig) -> None:
    line = {
        "custom_id": "oa-2",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "messages": [
                {"role": "developer", "content": "Rules."},
                {"role": "user", "content": "Go"},
            ],
            "max_completion_tokens": 33,
            "n": 1,
            "stream": False,
        },
    }
    [spec] = parse_file(write(tmp_path / "in.jsonl", [line]), cfg)
    assert (spec.model, spec.system, spec.max_tokens) == ("m-default", "Rules.", 33)


def test_default_model_option_applies_to_lines_without_a_model(
    tmp_path: Path, cfg: LLMConfig
) -> None:
    path = write(
        tmp_path / "in.jsonl", [GOOD, {"custom_id": "b", "model": "m-default", "prompt": "p"}]
    )
    a, b = parse_file(path, cfg, default_model="m-other")
    assert (a.model, b.model) == ("m-other", "m-default")


def test_unknown_default_model_option_is_rejected(tmp_path: Path, cfg: LLMConfig) -> None:
    err = rejected(write(tmp_path / "in.jsonl", [GOOD]), cfg, default_model="nope")
    assert err.errors[0].startswith("--model: unknown model 'nope'")


def test_no_model_and_no_default_is_a_bad_line(tmp_path: Path) -> None:
    empty = LLMConfig()
    err = rejected(write(tmp_path / "in.jsonl", [GOOD]), empty)
    assert err.errors == ["line 1: no model given and no default model configured"]


def test_crlf_line_endings_and_escaped_emoji_are_fine(tmp_path: Path, cfg: LLMConfig) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"custom_id": "a", "prompt": "smile \\ud83d\\ude00"}\r\n')
    [spec] = parse_file(path, cfg)
    assert spec.messages[0].content == "smile \U0001f600"


def test_example_backlog_is_valid_and_mixes_both_formats() -> None:
    from core.config_file import load_config

    root = Path(__file__).resolve().parents[2]
    config = load_config(
        str(root / "examples" / "llm_config.yaml"), {"LLMQ_DOTENV": "/nonexistent"}
    )
    specs = parse_file(root / "examples" / "backlog.jsonl", config)
    raw = [
        json.loads(line) for line in (root / "examples" / "backlog.jsonl").read_text().splitlines()
    ]
    assert len(specs) == len(raw) >= 50
    assert (
        sum("body" in line for line in raw) >= 10 and sum("body" not in line for line in raw) >= 10
    )
    assert len({s.model for s in specs}) >= 4
