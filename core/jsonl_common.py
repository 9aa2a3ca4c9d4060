"""Building blocks of the JSONL line checks, shared by `core.jsonl`, `core.jsonl_messages` and
`core.jsonl_features`: the `BadLine` exception and the scalar checks.

Owns: how one bad value becomes one reason text (``where: what is wrong``). Must not: know the
line formats or do I/O.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_TOKENS_LIMIT = 1_000_000  # matches JobSpec.max_tokens
MAX_METADATA_DEPTH = 32  # deeper JSON risks recursion limits when stored and read back


class BadLine(Exception):
    """One line's reason; caught by the file loop and turned into ``line N: reason``."""


def type_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def reject_unknown(obj: dict[str, Any], allowed: frozenset[str], where: str = "") -> None:
    """BadLine naming the first five fields of `obj` outside `allowed` (with `where` prefix)."""
    if obj.keys() <= allowed:  # the common case, without building a set
        return
    extra = sorted(set(obj) - allowed)
    names = ", ".join(f"{where}{k}" for k in extra[:5])
    raise BadLine(f"unsupported field(s): {names} (allowed: {', '.join(sorted(allowed))})")


def need_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadLine(f"{where} must be an object, got {type_name(value)}")
    return value


def need_str(value: Any, where: str, non_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise BadLine(f"{where} must be a string, got {type_name(value)}")
    if non_empty and not value:
        raise BadLine(f"{where} must not be empty")
    return value


def optional_bool(value: Any, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise BadLine(f"{where} must be true or false, got {json.dumps(value)}")
    return value


def number(value: Any, where: str, low: float, high: float) -> float | None:
    """A finite JSON number in [low, high], as float; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadLine(f"{where} must be a number, got {json.dumps(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise BadLine(f"{where} must be between {low:g} and {high:g}, got {value}")
    return float(value)


def integer(value: Any, where: str, low: int, high: int) -> int | None:
    """A JSON integer in [low, high] (1.0 and true are not integers); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadLine(f"{where} must be an integer, got {json.dumps(value)}")
    if not low <= value <= high:
        raise BadLine(f"{where} must be between {low} and {high}, got {value}")
    return value


def max_tokens(value: Any, where: str) -> int | None:
    return integer(value, where, 1, MAX_TOKENS_LIMIT)


def temperature(value: Any, where: str) -> float | None:
    return number(value, where, 0, 2)


def optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise BadLine(f"{key} must be a string, got {type_name(value)}")
    return value or None


def metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    need_object(value, where)
    nested = any(isinstance(v, dict | list) for v in value.values())
    if nested and depth(value) > MAX_METADATA_DEPTH:
        raise BadLine(f"{where} is nested deeper than {MAX_METADATA_DEPTH} levels")
    return value


def depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def cache(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise BadLine(f"cache must be true or false, got {json.dumps(value)}")
    return value


def check_text(obj: Any) -> None:
    """Reject NUL characters and unpaired surrogates anywhere: Postgres cannot store them."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            check_text(key)
            check_text(value)
    elif isinstance(obj, list):
        for value in obj:
            check_text(value)
    elif isinstance(obj, str):
        if "\x00" in obj:
            raise BadLine("text contains a NUL character (\\u0000)")
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadLine("text contains an unpaired UTF-16 surrogate escape") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once: NaN/Infinity refused


def json_text(value: Any, where: str) -> Any:
    """Parse JSON text found inside a line (tool-call arguments); BadLine names `where`."""
    try:
        return DECODER.decode(value)
    except json.JSONDecodeError as exc:
        raise BadLine(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from exc
    except ValueError as exc:  # NaN/Infinity, integers beyond the digit limit
        raise BadLine(f"{where}: not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadLine(f"{where}: not valid JSON: nested too deeply") from exc


def decode_line(raw: bytes | str, first: bool) -> str:
    """One physical line as text: UTF-8 checked, a BOM accepted only at the start of the file."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadLine(f"not valid UTF-8 (byte {exc.start + 1})") from exc
    else:
        text = raw
    if text.startswith("\ufeff"):
        if not first:  # a second file pasted onto this one, or a BOM-writing editor's append
            raise BadLine("byte order mark (U+FEFF) in the middle of the file")
        return text[1:]
    return text


def loads_object(text: str) -> dict[str, Any]:
    """One line's JSON object, or BadLine saying why not."""
    try:
        obj = DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    except ValueError as exc:  # NaN/Infinity, integers beyond the digit limit
        raise BadLine(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise BadLine("invalid JSON: nested too deeply") from exc
    if not isinstance(obj, dict):
        raise BadLine(f"expected a JSON object, got {type_name(obj)}")
    return obj


def custom_id(obj: dict[str, Any], max_len: int) -> str:
    cid = obj.get("custom_id")
    if cid is None:
        raise BadLine("missing custom_id")
    if not isinstance(cid, str):
        raise BadLine(f"custom_id must be a string, got {type_name(cid)}")
    if not cid.strip():
        raise BadLine("custom_id is empty")
    if len(cid) > max_len:
        raise BadLine(f"custom_id is longer than {max_len} characters")
    return cid
