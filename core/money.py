"""Money: USD amounts as the ledger stores them (NUMERIC(18, 8)) and as llmq prints them.

Owns: the ledger's quantum (8 decimal places), rounding up for reservations, turning database
sums into exact `Decimal`s, and the 8-decimal string used in JSON and on the CLI
("0.00123400"). Must not: price anything (`workers.pricing` does), or do any I/O.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

USD_QUANTUM = Decimal("0.00000001")  # the ledger's Money scale: NUMERIC(18, 8)


def as_decimal(value: Decimal | float | int) -> Decimal:
    """An exact Decimal: SQLite hands sums back as floats; going through str keeps binary
    noise out."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money_up(usd: Decimal) -> Decimal:
    """Round USD up to the ledger's 8 decimal places: reservations never round in our favour."""
    return usd.quantize(USD_QUANTUM, rounding=ROUND_CEILING)


def money_str(value: Decimal | float | int | None) -> str | None:
    """USD as an exact decimal string with 8 places, or None when unknown."""
    return None if value is None else format(as_decimal(value).quantize(USD_QUANTUM), "f")
