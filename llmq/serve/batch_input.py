"""Reading a stored batch input file as numbered JSONL lines, and OpenAI-style validation
errors from llmq's `InputError`.

Owns: the line splitting of stored chunks (same rules as `llmq submit`: lines over
`core.jsonl.MAX_LINE_BYTES` are reported, not read whole) and the `errors.data` entries.
Must not: do I/O itself (it gets an iterator of chunks) or decide what makes a line bad
(`core.jsonl` does, for the CLI and the API alike).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from core.jsonl import MAX_LINE_BYTES, InputError

_LINE = re.compile(r"^line (\d+): (.*)$", re.DOTALL)
MAX_COST_KEY = "llmq_max_cost_usd"  # batch metadata: a per-batch budget in USD (`--max-cost`)


def numbered_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the newline) per line; None for an oversized line."""
    buf = bytearray()
    n = 0
    oversized = False
    for chunk in chunks:
        buf += chunk
        while (i := buf.find(b"\n")) >= 0:
            n += 1
            line = bytes(buf[:i]).rstrip(b"\r")
            del buf[: i + 1]
            yield n, None if oversized or len(line) > MAX_LINE_BYTES else line
            oversized = False
        if len(buf) > MAX_LINE_BYTES + 1:  # keep reading, but never hold the line
            oversized = True
            buf.clear()
    if buf or oversized:
        n += 1
        line = bytes(buf).rstrip(b"\r")
        yield n, None if oversized or len(line) > MAX_LINE_BYTES else line


def validation_errors(exc: InputError) -> list[dict[str, Any]]:
    """OpenAI's `errors.data`: ``{"code", "line", "message", "param"}`` per reported problem."""
    out: list[dict[str, Any]] = []
    for text in exc.errors:
        m = _LINE.match(text)
        if m:
            out.append(
                {"code": "invalid_request", "line": int(m[1]), "message": m[2], "param": None}
            )
        elif text.startswith("..."):
            out.append({"code": "too_many_errors", "line": None, "message": text, "param": None})
        else:
            out.append({"code": "invalid_file", "line": None, "message": text, "param": None})
    return out


def max_cost(metadata: dict[str, str] | None) -> Decimal | None:
    """The per-batch budget named in `metadata[llmq_max_cost_usd]`, or None.

    Raises:
        ValueError: not a positive amount of USD.
    """
    raw = (metadata or {}).get(MAX_COST_KEY)
    if raw is None:
        return None
    try:
        usd = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"{raw!r} is not a number") from exc
    if not usd.is_finite() or usd <= 0 or usd >= Decimal("1e10"):
        raise ValueError(f"{raw!r} must be a positive amount in USD")
    return usd.quantize(Decimal("0.00000001"))
