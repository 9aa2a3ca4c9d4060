"""The worst case of one call: the upper bound a quota reservation holds before the call.

Owns: `prompt_token_bound` and `worst_case`. Pure functions of their arguments. Must not:
touch the database, Redis, the clock or any provider; reserving and settling live in
`core.ledger.quota_repo`, and the UTC windows budgets are counted in live in `core.quota`.

Why the prompt bound holds (the reservation is only safe if the real count never exceeds it):

* Every tokenizer the providers use turns text into tokens that each stand for at least one
  byte of its UTF-8 encoding: byte-level BPE (OpenAI, Anthropic, Llama 3, Cohere) merges bytes,
  so a token covers >= 1 byte; SentencePiece (Gemini, Mistral, Llama 2) covers >= 1 character,
  and a character is >= 1 UTF-8 byte (unknown characters fall back to one token per byte, or to
  a single `<unk>`). So a text of `b` bytes is at most `b` tokens.
* What is not text is framing: role markers, separators, BOS/EOS, the SentencePiece dummy
  prefix, the reply priming. Chat templates add a small constant per message (OpenAI documents
  3-4 per message plus 3 for the reply); `allowance` tokens per message cover it, and a
  top-level system prompt counts as one more message.
* What else a request sends is bounded the same way (issue 15): tool calls in the history
  (id, name and arguments: their bytes), tool results (the answered call's id and name), tool
  definitions and response_format schemas (their JSON bytes: providers render them as JSON or a
  terser form, e.g. OpenAI's TypeScript-like function namespace, never a longer one), each with
  one `allowance` of framing. Providers add fixed instructions of their own when tools or JSON
  output are asked for (Anthropic documents a tool-use system prompt of up to 530 tokens on
  Claude 3 Opus, 346 on Claude 4; its JSON-via-tool trick adds a tool; Cohere renders a tool
  preamble): `TOOLS_OVERHEAD` and `JSON_OVERHEAD` cover them, once per request.
* Images are not text: each costs at most `image_bound` tokens (config
  `quota.image_token_bound`; its default and why are in schemas/config.py).

The project's simulator counts `ceil(bytes / 4) + 3` per message, which is always inside this
bound for any allowance >= 3 (the default is 8).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from core.money import money_up
from schemas.config import QuotaSettings
from schemas.job import ChatMessage
from schemas.request import NO_FEATURES, Features
from workers.pricing import Price

MTOK = Decimal(1_000_000)
# Fixed instructions a provider adds when a request offers tools (tokens; see the docstring).
TOOLS_OVERHEAD = 2048
# ... and when it asks for JSON output (a JSON tool's name and description, mode prompts).
JSON_OVERHEAD = 512
IMAGE_TOKEN_BOUND = QuotaSettings().image_token_bound


def prompt_token_bound(
    messages: Sequence[ChatMessage],
    system: str | None,
    allowance: int,
    features: Features = NO_FEATURES,
    image_bound: int = IMAGE_TOKEN_BOUND,
) -> int:
    """Upper bound on the prompt tokens any provider will count for this request.

    Args:
        messages: the chat messages sent (text or parts, tool calls, tool results).
        system: a top-level system prompt, or None; counted as one more message.
        allowance: tokens added per message, tool call, tool and schema for framing (tokens).
        features: the request's tools and response_format (their JSON is sent too).
        image_bound: the most one input image may cost (tokens).

    Returns:
        UTF-8 bytes of every text, tool call, tool definition and schema, plus `allowance`
        per message and per such item, `image_bound` per image and the fixed overheads
        (tokens). See the module docstring for why a provider's own count is never larger.
    """
    names = {c.id: c.name for m in messages for c in m.tool_calls or ()}
    total = 0
    for m in messages:
        total += _bytes(m.text) + allowance + image_bound * len(m.images)
        if isinstance(m.content, tuple):  # each further content part is framed too
            total += allowance * max(len(m.content) - 1, 0)
        for call in m.tool_calls or ():
            total += _bytes(call.id) + _bytes(call.name) + _json_text_bytes(call.arguments)
            total += allowance
        if m.tool_call_id is not None:
            total += _json_text_bytes(m.text, wrap=True) - _bytes(m.text)  # its re-rendering
            total += _bytes(m.tool_call_id) + _bytes(names.get(m.tool_call_id, "")) + allowance
    if system is not None:
        total += _bytes(system) + allowance
    history = bool(names) or any(m.tool_call_id is not None for m in messages)
    return total + _features_bound(features, allowance, history)


def embedding_token_bound(inputs: Sequence[str], allowance: int) -> int:
    """Upper bound on the input tokens of an embedding call (issue 17): every input's UTF-8
    bytes plus `allowance` for its start/end markers (a token is at least one byte)."""
    return sum(_bytes(text) + allowance for text in inputs)


def _features_bound(features: Features, allowance: int, history: bool) -> int:
    """Tool definitions and the response schema as sent, plus the providers' fixed additions
    (the tool preamble also when only the history holds tool calls or results)."""
    total = TOOLS_OVERHEAD if features.tools or history else 0
    if features.tools:
        total += sum(_json_bytes(t.model_dump(mode="json")) + allowance for t in features.tools)
    fmt = features.response_format
    if fmt is not None and fmt.wants_json:
        total += JSON_OVERHEAD + _json_bytes(fmt.model_dump(mode="json")) + allowance
    return total


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _json_bytes(value: Any) -> int:
    """Bytes of `value` as JSON in its longest usual rendering (spaced separators, non-ASCII
    escaped): whichever form an adapter or provider renders, it is not longer than this."""
    return len(json.dumps(value).encode("utf-8"))


def _json_text_bytes(text: str, wrap: bool = False) -> int:
    """A JSON text the adapters may re-render (tool-call arguments become objects on some wire
    formats; tool results become ``{"result": ...}`` objects on others): the longer of the text
    and its re-rendering, escapes included."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    if wrap:
        value = {"result": value}
    return max(_bytes(text), _json_bytes(value))


def worst_case(prompt_bound: int, max_tokens: int, price: Price | None) -> tuple[int, Decimal]:
    """The most a call can use: every prompt token of the bound plus all of `max_tokens`.

    Args:
        prompt_bound: from `prompt_token_bound` (tokens).
        max_tokens: the completion cap sent to the provider (tokens).
        price: the deployment's price, or None when unknown.

    Returns:
        (tokens, usd). USD is rounded up to 8 places. With an unknown price the USD part is 0:
        such a call can only be held to token limits (the router prefers priced deployments).
    """
    tokens = prompt_bound + max_tokens
    if price is None:
        return tokens, Decimal(0)
    usd = (prompt_bound * price.input_per_mtok + max_tokens * price.output_per_mtok) / MTOK
    return tokens, money_up(usd)
