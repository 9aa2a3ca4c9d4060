"""Each adapter maps its provider's usage fields onto llmq's Usage (issue 19): totals with the
cache reads, cache writes and reasoning inside them, whatever the provider's own nesting
(request-fidelity.md §5). Untrusted classes are caught by the usage check."""

from __future__ import annotations

import pytest

from schemas.job import Usage
from workers.providers.anthropic import anthropic_usage
from workers.providers.cohere import CohereUsage, cohere_usage
from workers.providers.google import google_usage
from workers.providers.openai import openai_usage
from workers.usage_check import usage_problem


def U(p: int, c: int, cached: int = 0, write: int = 0, reasoning: int = 0) -> Usage:
    return Usage(
        prompt_tokens=p,
        completion_tokens=c,
        cached_tokens=cached,
        cache_write_tokens=write,
        reasoning_tokens=reasoning,
    )


@pytest.mark.parametrize(
    ("parse", "wire", "expected"),
    [
        # OpenAI (and HF, vLLM): both classes inside their parents
        (openai_usage, {"prompt_tokens": 100, "completion_tokens": 50,
                        "prompt_tokens_details": {"cached_tokens": 80},
                        "completion_tokens_details": {"reasoning_tokens": 30}},
         U(100, 50, cached=80, reasoning=30)),
        (openai_usage, {"prompt_tokens": 100, "completion_tokens": 50,
                        "prompt_tokens_details": None, "completion_tokens_details": None},
         U(100, 50)),
        (openai_usage, {"prompt_tokens": 100}, U(100, 0)),
        # Anthropic: input_tokens EXCLUDES cache reads and writes; thinking is in output
        (anthropic_usage, {"input_tokens": 20, "cache_read_input_tokens": 70,
                           "cache_creation_input_tokens": 10, "output_tokens": 40},
         U(100, 40, cached=70, write=10)),
        (anthropic_usage, {"input_tokens": 20, "output_tokens": 5}, U(20, 5)),
        # Gemini: cached inside promptTokenCount; thoughts OUTSIDE candidatesTokenCount
        (google_usage, {"promptTokenCount": 100, "cachedContentTokenCount": 60,
                        "candidatesTokenCount": 20, "thoughtsTokenCount": 30},
         U(100, 50, cached=60, reasoning=30)),
        (google_usage, {"promptTokenCount": 90, "toolUsePromptTokenCount": 10,
                        "candidatesTokenCount": 20}, U(100, 20)),
    ],
)  # fmt: skip
def test_usage_fields_map_onto_totals_and_classes(parse, wire, expected) -> None:  # type: ignore[no-untyped-def]
    assert parse(wire) == expected
    assert usage_problem(expected, None, 100) is None


def test_cohere_bills_billed_units_and_keeps_cached_tokens() -> None:
    usage = CohereUsage.model_validate(
        {
            "billed_units": {"input_tokens": 90, "output_tokens": 10},
            "tokens": {"input_tokens": 120, "output_tokens": 11},  # template included
            "cached_tokens": 40,
        }
    )
    assert cohere_usage(usage) == U(90, 10, cached=40)


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        (U(10, 5, cached=11), "cached_tokens + cache_write_tokens exceed prompt_tokens"),
        (U(10, 5, cached=6, write=5), "cached_tokens + cache_write_tokens exceed prompt_tokens"),
        (U(10, 5, reasoning=6), "reasoning_tokens exceed completion_tokens"),
        (U(10, 5, cached=-1), "cached_tokens is not a non-negative integer"),
    ],
)
def test_classes_outside_their_totals_are_untrusted(usage: Usage, problem: str) -> None:
    assert usage_problem(usage, None, 100) == problem


def test_an_untrusted_class_on_the_wire_is_caught() -> None:
    usage = openai_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": -3},
        }
    )
    assert usage_problem(usage, None, 100) == "cached_tokens is not a non-negative integer"
