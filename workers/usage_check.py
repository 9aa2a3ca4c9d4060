"""Usage sanity (issue 20): whether a reply's token counts can be booked, and what to book.

Owns: `usage_problem` (pure: why a usage cannot be trusted, or None) and `booked` (what the
finishing transaction records for a successful call: the reported usage at its price, or, when
the usage is untrusted, the attempt's reservation). Must not: do I/O, read the clock, or look
at message text.

The rule: prompt and completion counts are non-negative integers whose total is at most the
deployment's context window plus the call's `max_tokens` (a model cannot read or write more),
and the classes inside them (issue 19) fit: cache reads + cache writes <= prompt, reasoning
<= completion.
Anything else (1e20, -1000000, 1.5, "12", 10^12 on a 50-token call) is untrusted. The job still
succeeds with the reply (the provider answered, and most likely billed: re-running would pay
twice and could lose a paid answer), but the attempt is marked `malformed_reply` and booked at
its reservation, the worst case already admitted against every quota window. So an absurd
count can neither refund a tenant nor overshoot a budget nor overflow a column.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.job import ErrorKind, Usage

# The bound when a deployment declares no context window: above any model served today, and
# far below anything that could overflow a BIGINT or book absurd money.
DEFAULT_WINDOW_BOUND = 10_000_000


def usage_problem(usage: Usage, context_window: int | None, max_tokens: int) -> str | None:
    """Why `usage` cannot be booked, or None when it is plausible.

    Args:
        usage: the counts the adapter read (an estimated usage is ours, always trusted).
        context_window: the deployment's window in tokens; None = `DEFAULT_WINDOW_BOUND`.
        max_tokens: the completion limit the call was sent with, in tokens.
    """
    if usage.estimated:
        return None
    counts = usage.model_dump(exclude={"estimated"})
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{name} is not a non-negative integer"
    if usage.cached_tokens + usage.cache_write_tokens > usage.prompt_tokens:
        return "cached_tokens + cache_write_tokens exceed prompt_tokens"
    if usage.reasoning_tokens > usage.completion_tokens:
        return "reasoning_tokens exceed completion_tokens"
    bound = (context_window or DEFAULT_WINDOW_BOUND) + max(max_tokens, 0)
    total = usage.prompt_tokens + usage.completion_tokens
    if total > bound:
        return f"{total} tokens reported, more than context window + max_tokens ({bound})"
    return None


@dataclass(frozen=True, slots=True)
class Booked:
    """What a successful attempt books: usage and cost (None = price unknown), and, when the
    provider's usage was untrusted, `error_kind` = malformed_reply and `note` saying why."""

    usage: Usage
    cost_usd: Decimal | None
    error_kind: str | None = None
    note: str | None = None


def booked(
    usage: Usage,
    cost_usd: Decimal | None,
    *,
    context_window: int | None,
    max_tokens: int,
    reserved_tokens: int,
    reserved_usd: Decimal,
) -> Booked:
    """The usage and cost to record for a successful call.

    Args:
        usage: the reply's usage; cost_usd: its price (`pricing.cost`), None when unknown.
        context_window, max_tokens: the call's bound (see `usage_problem`), tokens.
        reserved_tokens, reserved_usd: the attempt's reservation (tokens, USD).
    """
    problem = usage_problem(usage, context_window, max_tokens)
    if problem is None:
        return Booked(usage, cost_usd)
    completion = min(max(max_tokens, 0), max(reserved_tokens, 0))
    at_reservation = Usage(
        prompt_tokens=max(reserved_tokens, 0) - completion,
        completion_tokens=completion,
        estimated=True,
    )
    note = f"usage untrusted ({problem}); booked at the reservation"
    return Booked(at_reservation, max(reserved_usd, Decimal(0)), ErrorKind.MALFORMED_REPLY, note)
