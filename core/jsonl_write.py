"""Write JSONL that every line-splitting reader splits where we do: one object per `\\n`.

Owns: turning a dict into one output line (`json_line`) and writing a stream of them to a path
or an open text file (`write_jsonl`). Used for every JSONL llmq produces (results files,
`llmq results`, error files). Must not: touch the database or decide what goes in a line.

Why: `json.dumps(..., ensure_ascii=False)` keeps non-ASCII text readable, but it leaves U+0085
(NEL), U+2028 and U+2029 raw, and Python's `str.splitlines`, JavaScript's line terminators and
many editors break lines there. JSON already escapes every C0 control character (U+000B,
U+000C, U+001C-U+001E included); these three are escaped here too. Every other non-ASCII
character stays raw, and `json.loads` reads the escapes back to the same text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["LINE_BREAKERS", "json_line", "write_jsonl"]

# Characters `str.splitlines` treats as line ends that `json.dumps(ensure_ascii=False)` keeps.
LINE_BREAKERS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_line(obj: Any, **dumps: Any) -> str:
    """`obj` as one line of JSON (no trailing newline), non-ASCII raw except line breakers."""
    text = json.dumps(obj, ensure_ascii=False, **dumps)
    return text.translate(LINE_BREAKERS)


def write_jsonl(lines: Iterable[Any], out: str | Path | TextIO) -> int:
    """Write one `json_line` per item, each ending in ``\\n``; returns the lines written.

    `out` is a path (opened for writing, UTF-8, truncated) or an open text file.
    Raises OSError as the file system reports it (full disk, not a directory, ...).
    """
    if isinstance(out, str | Path):
        with open(out, "w", encoding="utf-8") as f:
            return write_jsonl(lines, f)
    n = 0
    for n, obj in enumerate(lines, 1):  # noqa: B007
        out.write(json_line(obj) + "\n")
    out.flush()
    return n
