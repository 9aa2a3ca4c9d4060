"""Deterministic token counting and reply text for the simulator.

This module owns the provider-independent request model (``ChatRequest``, filled in by each
provider's parser) and the rules that turn it into a reply (``Completion``):

* ``prompt_tokens`` = sum over every text piece (a top-level system prompt and each message's
  content, block texts of one message concatenated) of ``ceil(utf8_bytes / 4)``, plus 3 per
  message (plus 3 for a top-level system prompt).
  **Invariant:** since ``ceil(b / 4) <= b`` for every ``b >= 0`` and 3 < 8, this is always
  ``<= total UTF-8 bytes of the texts + 8 per message`` - the worst-case upper bound llmq uses
  when it reserves quota before a call. Keep it that way.
* ``completion_tokens`` = ``min(max_tokens or 256, 16 + prompt_tokens % 17)``; the reply was
  truncated (finish reason "length") when ``max_tokens`` cut it short.
* The reply text is ``"sim:" + sha256(model + last user text)[:12]`` followed by filler words,
  one word per completion token, so the same request always gets the same reply.
* Images add ``min(85, ceil(len(url or base64) / 4))`` prompt tokens each (still within the
  bound above, counting the image reference as text).
* Tool calls and JSON replies (``simulator.tooling``) cost ``ceil(utf8_bytes / 4)`` of their
  JSON, at least 1; a max-tokens cap below that cuts the JSON (finish "length"). A stop string
  cuts the reply; the completion tokens are then the words (text) or tokens (JSON) kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

from simulator.tooling import Features, ToolCall, answer

DEFAULT_MAX_TOKENS = 256
PER_MESSAGE_TOKENS = 3

_FILLER = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi aliquip ex ea commodo consequat"
).split()


@dataclass(slots=True)
class ChatRequest:
    """A chat request reduced to what the simulator needs, whatever the wire format."""

    model: str
    texts: list[str]
    n_messages: int
    last_user_text: str
    max_tokens: int | None
    stream: bool = False
    features: Features = field(default_factory=Features)


@dataclass(slots=True)
class Completion:
    """The deterministic reply to a ``ChatRequest``."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool
    tool_calls: list[ToolCall] = field(default_factory=list)
    is_json: bool = False
    refusal: bool = False
    stop_hit: str | None = None
    # issue 19: classes inside the totals (prompt: cache reads/writes; completion: reasoning)
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def finish(self) -> str:
        """Neutral finish: ``tool``, ``refusal``, ``length``, ``stop_sequence`` or ``stop``."""
        if self.tool_calls:
            return "tool"
        if self.refusal:
            return "refusal"
        if self.truncated:
            return "length"
        return "stop_sequence" if self.stop_hit is not None else "stop"

    @property
    def total_tokens(self) -> int:
        """prompt + completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def billed(self) -> tuple[int, int, int, int, int]:
        """(prompt, completion, cached, cache_write, reasoning): what the call is billed."""
        return (
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )


def text_tokens(text: str) -> int:
    """ceil(utf8_bytes / 4) for one text piece."""
    return (len(text.encode("utf-8")) + 3) // 4


def count_prompt_tokens(texts: list[str], n_messages: int) -> int:
    """Prompt tokens: see the module docstring (always <= bytes + 8 per message)."""
    return sum(text_tokens(t) for t in texts) + PER_MESSAGE_TOKENS * n_messages


def natural_completion_tokens(prompt_tokens: int) -> int:
    """How long the reply would be without a max-tokens cap."""
    return 16 + prompt_tokens % 17


@lru_cache(maxsize=1024)
def _filler(n_words: int) -> str:
    if n_words <= 0:
        return ""
    words = [_FILLER[i % len(_FILLER)] for i in range(n_words)]
    return " " + " ".join(words)


def reply_text(model: str, last_user_text: str, completion_tokens: int) -> str:
    """``sim:<12 hex>`` plus ``completion_tokens - 1`` filler words."""
    digest = hashlib.sha256((model + last_user_text).encode("utf-8")).hexdigest()[:12]
    return "sim:" + digest + _filler(completion_tokens - 1)


def prompt_tokens_of(request: ChatRequest) -> int:
    """Prompt tokens of a parsed request."""
    base = count_prompt_tokens(request.texts, request.n_messages)
    return base + request.features.image_tokens


def complete(
    request: ChatRequest, prompt_tokens: int | None = None, fault: str | None = None
) -> Completion:
    """Build the deterministic completion for ``request`` (``fault``: see ``tooling``)."""
    if prompt_tokens is None:
        prompt_tokens = prompt_tokens_of(request)
    natural = natural_completion_tokens(prompt_tokens)
    cap = request.max_tokens if request.max_tokens is not None else DEFAULT_MAX_TOKENS
    completion_tokens = min(cap, natural)
    truncated = request.max_tokens is not None and request.max_tokens < natural
    text = reply_text(request.model, request.last_user_text, completion_tokens)
    said = answer(request.model, request.last_user_text, request.features, text, fault)
    done = Completion(
        text=said.text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        truncated=truncated,
        tool_calls=said.tool_calls,
        is_json=said.is_json,
        refusal=said.refusal,
        stop_hit=said.stop_hit,
    )
    if said.tool_calls:
        sizes = sum(text_tokens(c.name + c.arguments_json) for c in said.tool_calls)
        done.completion_tokens, done.truncated = max(1, sizes), False
    elif said.is_json or said.refusal:
        done.completion_tokens = max(1, text_tokens(said.text))
        done.truncated = done.completion_tokens > cap
        if done.truncated:
            done.text, done.completion_tokens, done.stop_hit = said.text[: cap * 4], cap, None
    elif said.stop_hit is not None:
        done.truncated = False
        done.completion_tokens = len(said.text.split())
    return done
