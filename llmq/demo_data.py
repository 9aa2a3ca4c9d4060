"""The demo's input: a small, varied, deterministic JSONL batch (`llmq demo` writes it to disk).

Owns: `demo_lines()` and `write_demo_file(path)`. Must not: know about providers or routing;
the lines only name the models in llmq/demo_config.yaml.

The mix: both accepted line formats (native and OpenAI Batch), prompts and chat messages,
system prompts, per-line max_tokens and metadata, most lines on the default model and some on
a model that falls back, and a few repeated deterministic (temperature 0) requests that the
response cache may answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TICKETS = (
    "My invoice shows two charges for the same month.",
    "The export button does nothing in Firefox.",
    "How do I add a second admin to our workspace?",
    "Your app logged me out five times today.",
    "Can I get a refund for the unused part of my plan?",
    "The API returns 502 when I upload files over 10 MB.",
    "Please delete my account and all my data.",
    "Dark mode makes the charts unreadable.",
)
REVIEWS = (
    "Arrived a day early and works perfectly.",
    "The battery died after two weeks.",
    "Decent value, but the manual is useless.",
    "Best purchase I've made this year!",
    "It's fine. Nothing special.",
    "Broke on the first use; support never answered.",
)
TOPICS = ("autumn rain", "a server room at night", "the first commit", "a quiet train")
PHRASES = ("Where is the station?", "The meeting moved to Thursday.", "Thank you for waiting.")
LANGUAGES = ("French", "German", "Japanese", "Spanish")
FACTS = ("the boiling point of water at sea level", "the speed of light", "the year 1969")

SUPPORT = "You are a support triage assistant. Answer in one short sentence."


def _native(custom_id: str, **fields: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, **fields}


def _openai(custom_id: str, model: str, messages: list[dict[str, str]], **body: Any) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": messages, **body},
    }


def _tickets() -> Iterator[dict[str, Any]]:
    for i, ticket in enumerate(TICKETS * 3, 1):
        yield _native(
            f"ticket-{i:03d}",
            system=SUPPORT,
            prompt=f"Route this ticket to billing, bugs or account: {ticket}",
            max_tokens=60,
            metadata={"queue": "support", "n": i},
        )


def _reviews() -> Iterator[dict[str, Any]]:
    for i, review in enumerate(REVIEWS * 3, 1):
        yield _openai(
            f"review-{i:03d}",
            "gpt-4o-mini",
            [
                {"role": "system", "content": "Classify sentiment: positive, negative, mixed."},
                {"role": "user", "content": review},
            ],
            max_tokens=20,
        )


def _creative() -> Iterator[dict[str, Any]]:
    n = 0
    for topic in TOPICS:
        for style in ("a haiku", "a limerick", "two sentences"):
            n += 1
            yield _native(f"write-{n:03d}", prompt=f"Write {style} about {topic}.", max_tokens=80)


def _translations() -> Iterator[dict[str, Any]]:
    n = 0
    for phrase in PHRASES:
        for language in LANGUAGES:
            n += 1
            yield _native(
                f"translate-{n:03d}",
                model="gpt-4o-mini" if n % 3 == 0 else None,
                messages=[
                    {"role": "user", "content": f"Translate into {language}: {phrase}"},
                    {"role": "assistant", "content": "Sure. Just the translation?"},
                    {"role": "user", "content": "Yes, only the translation."},
                ],
                max_tokens=40,
            )


def _repeats() -> Iterator[dict[str, Any]]:
    # The same deterministic request several times: a response cache can answer the repeats.
    for n in range(1, 10):
        fact = FACTS[n % len(FACTS)]
        yield _native(f"fact-{n:03d}", prompt=f"State {fact} in one line.", temperature=0)


def demo_lines() -> list[dict[str, Any]]:
    """The demo batch, one dict per line (about 90 lines, stable order)."""
    lines = [*_tickets(), *_reviews(), *_creative(), *_translations(), *_repeats()]
    return [{k: v for k, v in line.items() if v is not None} for line in lines]


def write_demo_file(path: Path) -> int:
    """Write the demo batch as JSONL to `path`; returns the number of lines."""
    lines = demo_lines()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return len(lines)
