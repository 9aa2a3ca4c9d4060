"""Durations as people write them: `24h`, `90m`, `2d`, `3600s`, `1.5h` (issue 18's deadlines).

Owns: `parse_duration`. Pure. Must not: read the clock (callers add the result to their `now`).
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_FORM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
MAX_DAYS = 365


def parse_duration(text: str) -> timedelta:
    """`24h` -> 24 hours. Raises ValueError naming the text and the accepted form."""
    found = _FORM.match(text or "")
    if not found:
        raise ValueError(f"{text!r} is not a duration like 24h, 90m, 2d or 3600s")
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds <= 0 or seconds > MAX_DAYS * 86400:
        raise ValueError(f"{text!r}: a duration must be above 0 and at most {MAX_DAYS} days")
    return timedelta(seconds=seconds)
