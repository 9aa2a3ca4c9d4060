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
* The bound is only for text content; llmq sends nothing else (no images, tools or files).

The project's simulator counts `ceil(bytes / 4) + 3` per message, which is always inside this
bound for any allowance >= 3 (the default is 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from core.money import money_up
from schemas.job import ChatMessage
from workers.pricing import Price

MTOK = Decimal(1_000_000)


def prompt_token_bound(messages: Sequence[ChatMessage], system: str | None, allowance: int) -> int:
    """Upper bound on the prompt tokens any provider will count for this request.

    Args:
        messages: the chat messages sent.
        system: a top-level system prompt, or None; counted as one more message.
        allowance: tokens added per message for chat-template framing (tokens).

    Returns:
        UTF-8 bytes of every text plus `allowance` per message (tokens). See the module
        docstring for why a provider's own count is never larger.
    """
    texts = [m.content for m in messages]
    if system is not None:
        texts.append(system)
    return sum(len(t.encode("utf-8")) for t in texts) + allowance * len(texts)


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
