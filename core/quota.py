"""Quota arithmetic: worst-case bounds for a call and the UTC windows budgets are counted in.

Owns: `prompt_token_bound`, `worst_case`, `windows`, `next_reset`, `money_up`. Pure functions of
their arguments (the clock is passed in as `now`). Must not: touch the database, Redis, the clock
or any provider; reserving and settling live in `core.ledger.quota_repo`.

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
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from schemas.job import ChatMessage

if TYPE_CHECKING:  # pricing is a sibling module; only its type is needed here
    from workers.pricing import Price

USD_QUANTUM = Decimal("0.00000001")  # the ledger's Money scale: NUMERIC(18, 8)
MTOK = Decimal(1_000_000)
PERIODS = ("day", "month")


def money_up(usd: Decimal) -> Decimal:
    """Round USD up to the ledger's 8 decimal places: reservations never round in our favour."""
    return usd.quantize(USD_QUANTUM, rounding=ROUND_CEILING)


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


def _utc(now: datetime) -> datetime:
    # A naive timestamp is read as UTC: SQLite hands back naive datetimes for what we stored as UTC.
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def windows(now: datetime) -> dict[str, date]:
    """The budget windows `now` falls in: {"day": the UTC date, "month": its first day}."""
    day = _utc(now).date()
    return {"day": day, "month": day.replace(day=1)}


def window_end(period: str, start: date) -> datetime:
    """When the window of `period` ('day' or 'month') that starts on `start` ends (UTC)."""
    if period == "day":
        end = start + timedelta(days=1)
    elif period == "month":
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        raise ValueError(f"period {period!r} has no end (expected 'day' or 'month')")
    return datetime.combine(end, time(0), tzinfo=UTC)


def next_reset(now: datetime) -> datetime:
    """The next UTC midnight: the earliest moment any tenant window resets.

    A job parked for quota may try again then; if it was the month that was full, it is
    simply parked again until the month turns.
    """
    return window_end("day", windows(now)["day"])
