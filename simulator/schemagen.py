"""Deterministic instances of a JSON Schema (and of Gemini's OpenAPI ``Schema`` subset).

This module owns ``instance(schema, seed)``: a value that validates against ``schema``, the same
one for the same ``(schema, seed)`` so a retried request gets the same answer. It serves every
dialect's structured output and every tool call's arguments. ``violate(schema, value, seed)``
turns a valid instance into one that breaks the schema (for the invalid-JSON fault knob).

Rules, in order: ``$ref`` (local ``#/$defs/..``/``#/definitions/..``) is resolved; ``const``, then
the first ``enum`` value whose hash-picked index is valid; ``allOf`` is merged; ``anyOf``/``oneOf``
take the first branch that is not ``null`` (else the first); a type list or ``nullable`` takes
the first non-null type. Objects: every property in schema order (past depth 6 only the
required ones); arrays: ``max(minItems, min(maxItems, 2))`` items (``prefixItems`` first);
strings: ``format`` (date, date-time, time, duration, email, hostname, uri, uuid, ipv4, ipv6),
else ``"sim-<hex>"`` padded/cut to min/maxLength; numbers: inside minimum/maximum (exclusive
bounds respected, ``multipleOf`` honoured). Gemini's upper-case ``type`` names are accepted.
Must not: do I/O or know any wire format.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

MAX_DEPTH = 6
_FORMATS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T10:30:00Z",
    "time": "10:30:00",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "iri": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


def digest(*parts: str) -> str:
    """Hex sha256 of the joined parts (the source of every deterministic choice)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _types(schema: dict[str, Any]) -> list[str]:
    raw = schema.get("type")
    if raw is None:
        if "properties" in schema:
            return ["object"]
        if "items" in schema or "prefixItems" in schema:
            return ["array"]
        return []
    names = raw if isinstance(raw, list) else [raw]
    return [str(n).lower() for n in names]


class _Gen:
    def __init__(self, root: dict[str, Any], seed: str) -> None:
        self.root = root
        self.seed = seed

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
            ref = schema["$ref"]
            target: Any = self.root
            if ref != "#":
                if not ref.startswith("#/"):
                    return {}
                for part in ref[2:].split("/"):
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part, {}) if isinstance(target, dict) else {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if rest else target
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def pick(self, path: str, n: int) -> int:
        return int(digest(self.seed, path)[:8], 16) % n if n > 0 else 0

    def value(self, schema: Any, path: str, depth: int) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[self.pick(path, len(enum))]
        combined = self.combine(schema)
        if combined is not None:
            return self.value(combined, path, depth)
        types = [t for t in _types(schema) if t != "null"]
        if not types:
            return None if _types(schema) == ["null"] else "sim"
        kind = types[0]
        if kind == "object":
            return self.obj(schema, path, depth)
        if kind == "array":
            return self.array(schema, path, depth)
        if kind == "string":
            return self.string(schema, path)
        if kind in ("integer", "number"):
            return self.number(schema, path, kind == "integer")
        if kind == "boolean":
            return self.pick(path, 2) == 0
        return None

    def combine(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        """``allOf`` merged, or the chosen ``anyOf``/``oneOf`` branch; None if neither."""
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                props = {**merged.get("properties", {}), **part.get("properties", {})}
                required = [*merged.get("required", []), *part.get("required", [])]
                merged = {**merged, **part, "properties": props, "required": required}
            return merged
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                chosen = next(
                    (b for b in branches if _types(self.resolve(b)) != ["null"]), branches[0]
                )
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                return {**rest, **self.resolve(chosen)}
        return None

    def obj(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        order = schema.get("propertyOrdering") or list(props)
        out: dict[str, Any] = {}
        for name in order:
            if name not in props or (depth >= MAX_DEPTH and name not in required):
                continue
            out[name] = self.value(props[name], f"{path}.{name}", depth + 1)
        for name in sorted(required - set(out)):
            out[name] = "sim"  # required but undeclared: any value is allowed
        min_props = schema.get("minProperties") or 0
        extra = schema.get("additionalProperties")
        i = 0
        while len(out) < min_props and extra is not False:
            sub = extra if isinstance(extra, dict) else {"type": "string"}
            out[f"extra_{i}"] = self.value(sub, f"{path}.extra_{i}", depth + 1)
            i += 1
        return out

    def array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        prefix = schema.get("prefixItems") or []
        n = max(low, 2 if depth < MAX_DEPTH else 0, len(prefix) if high is None else 0)
        if high is not None:
            n = min(n, int(high))
        n = max(n, low)
        items = schema.get("items")
        out: list[Any] = []
        for i in range(n):
            sub = prefix[i] if i < len(prefix) else items if isinstance(items, dict) else {}
            out.append(self.value(sub, f"{path}[{i}]", depth + 1))
        if schema.get("uniqueItems") and len(out) > max(1, low):
            out = out[: max(1, low)]
        return out

    def string(self, schema: dict[str, Any], path: str) -> str:
        fmt = schema.get("format")
        text = _FORMATS.get(fmt) if isinstance(fmt, str) else None
        if fmt == "uuid":
            h = digest(self.seed, path)
            text = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        if text is None:
            text = "sim-" + digest(self.seed, path)[:8]
        low = int(schema.get("minLength") or 0)
        high = schema.get("maxLength")
        if len(text) < low:
            text += "x" * (low - len(text))
        if high is not None and len(text) > int(high):
            text = text[: int(high)]
        return text

    def number(self, schema: dict[str, Any], path: str, integer: bool) -> int | float:
        low = schema.get("minimum")
        high = schema.get("maximum")
        xlow = schema.get("exclusiveMinimum")
        xhigh = schema.get("exclusiveMaximum")
        step = schema.get("multipleOf")
        if isinstance(xlow, bool):  # draft-4 boolean form
            xlow, low = (low if xlow else None), (None if xlow else low)
        if isinstance(xhigh, bool):
            xhigh, high = (high if xhigh else None), (None if xhigh else high)
        eps = 1 if integer else 0.5
        lo = low if low is not None else (xlow + eps if xlow is not None else None)
        hi = high if high is not None else (xhigh - eps if xhigh is not None else None)
        if lo is None and hi is None:
            candidate: float = 1 + self.pick(path, 100)
        elif lo is None:
            candidate = hi  # type: ignore[assignment]
        elif hi is None:
            candidate = lo + self.pick(path, 10)
        else:
            candidate = lo + (hi - lo) * self.pick(path, 11) / 10
        if step:
            candidate = math.ceil(candidate / step) * step
            if hi is not None and candidate > hi:
                candidate = math.floor(hi / step) * step
        if integer:
            value = math.ceil(candidate) if lo is not None else math.floor(candidate)
            if hi is not None and value > hi:
                value = math.floor(hi)
            return int(value)
        return round(float(candidate), 6) if not step else candidate


def instance(schema: dict[str, Any] | None, seed: str) -> Any:
    """A value valid against ``schema`` (None or ``{}`` -> a small object), deterministic."""
    if not schema:
        return {"answer": "sim-" + digest(seed)[:12]}
    return _Gen(schema, seed).value(schema, "$", 0)


def violate(schema: dict[str, Any] | None, value: Any, seed: str) -> Any:
    """A JSON value that does *not* validate against ``schema`` (best effort)."""
    gen = _Gen(schema or {}, seed)
    top = gen.resolve(schema or {})
    required = top.get("required") or []
    if isinstance(value, dict) and required:
        broken = dict(value)
        broken.pop(required[0], None)
        return broken
    if isinstance(value, dict):
        return ["not", "an", "object"]
    return {"unexpected": value}
