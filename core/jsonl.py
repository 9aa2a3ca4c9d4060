"""Parse and validate a JSONL batch file into `JobSpec`s, all lines before anything is written.

Owns: the two accepted line formats and every rule that makes a line bad. Must not: touch the
database, the broker or provider code; it is a pure function of the file and the config.

Accepted lines (blank lines are skipped):

- native: ``{"custom_id", "model"?, "prompt" | "messages", "system"?, "max_tokens"?,
  "temperature"?, "metadata"?, "cache"?}``
- OpenAI Batch: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
  "body": {"model"?, "messages", "max_tokens" | "max_completion_tokens"?, "temperature"?,
  "metadata"?, "n": 1?, "stream": false?}}``

System messages inside ``messages`` (role ``system`` or ``developer``) move to ``system``.
Anything that cannot be honoured (other body parameters, tool roles, image parts) is a bad
line rather than silently dropped. Any bad line rejects the whole file: `InputError` carries
``"line N: reason"`` entries, capped at `max_errors` plus ``"... and K more"``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from schemas.config import LLMConfig
from schemas.job import JobSpec

MAX_LINE_BYTES = 1 << 20  # 1 MiB per line, newline excluded
MAX_CUSTOM_ID = 256
MAX_TOKENS_LIMIT = 1_000_000  # matches JobSpec.max_tokens
MAX_METADATA_DEPTH = 32  # deeper JSON risks recursion limits when stored and read back
OPENAI_URL = "/v1/chat/completions"

NATIVE_FIELDS = frozenset(
    {"custom_id", "model", "prompt", "messages", "system", "max_tokens", "temperature"}
    | {"metadata", "cache"}
)
OPENAI_FIELDS = frozenset({"custom_id", "method", "url", "body"})
BODY_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "metadata"}
    | {"n", "stream"}
)
MESSAGE_FIELDS = frozenset({"role", "content"})
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# Only escapes can put NUL or lone surrogates into a parsed string (raw ones are invalid JSON
# or invalid UTF-8), so the precise check runs only on lines containing one of these escapes.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class InputError(ValueError):
    """A rejected input: `errors` are ``"line N: reason"`` strings (already capped)."""

    def __init__(self, errors: list[str], path: str | None = None, bad_lines: int = 0) -> None:
        self.errors = errors
        self.path = path
        self.bad_lines = bad_lines or len(errors)
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        plural = "s" if self.bad_lines != 1 else ""
        header = f"{where}rejected, {self.bad_lines} problem{plural}; nothing was submitted"
        return "\n".join([header, *(f"  {e}" for e in self.errors)])


class _BadLine(Exception):
    """One line's reason; caught by the loop and turned into ``line N: reason``."""


def parse_file(
    path: str | Path,
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
) -> list[JobSpec]:
    """Read and validate every line of `path`; return specs in input order, models resolved.

    Raises:
        InputError: any bad line (or an empty file / unreadable path); nothing is returned.
    """
    try:
        with open(path, "rb") as f:
            return parse_lines(_physical_lines(f), config, default_model, max_errors, str(path))
    except OSError as exc:
        raise InputError([f"cannot read file: {exc.strerror or exc}"], str(path)) from exc


def parse_lines(
    lines: Iterable[tuple[int, bytes | str | None]],
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
    source: str | None = None,
) -> list[JobSpec]:
    """Validate numbered raw lines (None = oversized). See `parse_file`."""
    ctx = _Context(config, default_model)
    if ctx.model_error:
        raise InputError([ctx.model_error], source)
    errors: list[str] = []
    bad = 0
    specs: list[JobSpec] = []
    for line_no, raw in lines:
        try:
            spec = ctx.line(line_no, raw)
        except _BadLine as exc:
            bad += 1
            if len(errors) < max_errors:
                errors.append(f"line {line_no}: {exc}")
            continue
        if spec is not None:
            specs.append(spec)
    if bad > len(errors):
        errors.append(f"... and {bad - len(errors)} more")
    if not errors and not specs:
        errors, bad = ["empty file: no job lines"], 1
    if errors:
        raise InputError(errors, source, bad)
    return specs


def check_specs(
    specs: Sequence[JobSpec], config: LLMConfig, default_model: str | None = None
) -> list[JobSpec]:
    """Apply the file rules to specs built in Python: models resolved, custom_ids unique."""
    lines = ((i, json.dumps(s.model_dump(mode="json"))) for i, s in enumerate(specs, 1))
    return parse_lines(lines, config, default_model)


def _physical_lines(f: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Yield (line number, bytes) with at most MAX_LINE_BYTES + 1 read per line; None = too long."""
    line_no = 0
    while chunk := f.readline(MAX_LINE_BYTES + 2):
        line_no += 1
        body = chunk.rstrip(b"\r\n")
        if len(body) <= MAX_LINE_BYTES:
            yield line_no, body
            continue
        while not chunk.endswith(b"\n"):  # skip the rest of the oversized line
            chunk = f.readline(MAX_LINE_BYTES)
            if not chunk:
                break
        yield line_no, None


class _Context:
    """Per-file state: known models, the resolved default, custom_ids seen so far."""

    def __init__(self, config: LLMConfig, default_model: str | None) -> None:
        self.models = set(config.model_names())
        self.model_list = ", ".join(config.model_names()[:10]) or "none configured"
        self.model_error: str | None = None
        if default_model is not None and default_model not in self.models:
            self.model_error = (
                f"--model: unknown model {default_model!r} (known: {self.model_list})"
            )
        self.default = default_model or config.default_model_name()
        self.seen: dict[str, int] = {}

    def line(self, line_no: int, raw: bytes | str | None) -> JobSpec | None:
        if raw is None:
            raise _BadLine(f"line is longer than {MAX_LINE_BYTES} bytes")
        text = _decode(raw, first=line_no == 1)
        if not text or text.isspace():  # blank lines are skipped (isspace stops early: no copy)
            return None
        obj = _loads(text)
        fields = _openai_fields(obj) if _is_openai(obj) else _native_fields(obj)
        custom_id = _custom_id(obj)
        fields["model"] = self._model(fields.get("model"))
        if _SUSPECT_ESCAPE.search(text):
            _check_text(obj)
        if custom_id in self.seen:
            raise _BadLine(
                f"duplicate custom_id {custom_id!r} (first on line {self.seen[custom_id]})"
            )
        try:  # the checks above make this pass; pydantic stays the final word on the schema
            spec = JobSpec(custom_id=custom_id, **fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise _BadLine(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
        self.seen[custom_id] = line_no
        return spec

    def _model(self, name: Any) -> str:
        if name is None:
            if self.default is None:
                raise _BadLine("no model given and no default model configured")
            return self.default
        if not isinstance(name, str) or not name:
            raise _BadLine("model must be a non-empty string")
        if name not in self.models:
            raise _BadLine(f"unknown model {name!r} (known: {self.model_list})")
        return name


def _decode(raw: bytes | str, first: bool) -> str:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _BadLine(f"not valid UTF-8 (byte {exc.start + 1})") from exc
    else:
        text = raw
    return text.removeprefix("\ufeff") if first else text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once: NaN/Infinity refused


def _loads(text: str) -> dict[str, Any]:
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _BadLine(f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    except ValueError as exc:  # NaN/Infinity, integers beyond the digit limit
        raise _BadLine(f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise _BadLine("invalid JSON: nested too deeply") from exc
    if not isinstance(obj, dict):
        raise _BadLine(f"expected a JSON object, got {_type_name(obj)}")
    return obj


def _is_openai(obj: dict[str, Any]) -> bool:
    return "body" in obj or "url" in obj or "method" in obj


def _unknown(obj: dict[str, Any], allowed: frozenset[str], where: str = "") -> None:
    if obj.keys() <= allowed:  # the common case, without building a set
        return
    extra = sorted(set(obj) - allowed)
    if extra:
        names = ", ".join(f"{where}{k}" for k in extra[:5])
        raise _BadLine(f"unsupported field(s): {names} (allowed: {', '.join(sorted(allowed))})")


def _custom_id(obj: dict[str, Any]) -> str:
    cid = obj.get("custom_id")
    if cid is None:
        raise _BadLine("missing custom_id")
    if not isinstance(cid, str):
        raise _BadLine(f"custom_id must be a string, got {_type_name(cid)}")
    if not cid.strip():
        raise _BadLine("custom_id is empty")
    if len(cid) > MAX_CUSTOM_ID:
        raise _BadLine(f"custom_id is longer than {MAX_CUSTOM_ID} characters")
    return cid


def _native_fields(obj: dict[str, Any]) -> dict[str, Any]:
    _unknown(obj, NATIVE_FIELDS)
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if prompt is not None and messages is not None:
        raise _BadLine("give either prompt or messages, not both")
    system = _optional_str(obj, "system")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise _BadLine(f"prompt must be a string, got {_type_name(prompt)}")
        if not prompt.strip():
            raise _BadLine("missing text: prompt is empty")
        msgs = [{"role": "user", "content": prompt}]
    elif messages is not None:
        msgs, system = _messages(messages, system, "messages")
    else:
        raise _BadLine("missing text: give prompt or messages")
    return {
        "model": obj.get("model"),
        "messages": msgs,
        "system": system,
        "max_tokens": _max_tokens(obj.get("max_tokens"), "max_tokens"),
        "temperature": _temperature(obj.get("temperature"), "temperature"),
        "metadata": _metadata(obj.get("metadata"), "metadata"),
        "cache": _cache(obj.get("cache")),
    }


def _openai_fields(obj: dict[str, Any]) -> dict[str, Any]:
    _unknown(obj, OPENAI_FIELDS)
    if obj.get("method") != "POST":
        raise _BadLine(f'method must be "POST", got {json.dumps(obj.get("method"))}')
    if obj.get("url") != OPENAI_URL:
        raise _BadLine(f'url must be "{OPENAI_URL}", got {json.dumps(obj.get("url"))}')
    body = obj.get("body")
    if not isinstance(body, dict):
        raise _BadLine(f"body must be an object, got {_type_name(body)}")
    _unknown(body, BODY_FIELDS, "body.")
    if body.get("n") not in (None, 1):
        raise _BadLine("body.n must be 1 (one completion per line)")
    if body.get("stream") not in (None, False):
        raise _BadLine("body.stream must be false in a batch")
    if body.get("messages") is None:
        raise _BadLine("missing text: body.messages is required")
    msgs, system = _messages(body["messages"], None, "body.messages")
    max_tokens = _max_tokens(body.get("max_tokens"), "body.max_tokens")
    max_completion = _max_tokens(body.get("max_completion_tokens"), "body.max_completion_tokens")
    if max_tokens is not None and max_completion is not None and max_tokens != max_completion:
        raise _BadLine("body.max_tokens and body.max_completion_tokens disagree")
    return {
        "model": body.get("model"),
        "messages": msgs,
        "system": system,
        "max_tokens": max_tokens if max_tokens is not None else max_completion,
        "temperature": _temperature(body.get("temperature"), "body.temperature"),
        "metadata": _metadata(body.get("metadata"), "body.metadata"),
    }


def _messages(raw: Any, system: str | None, where: str) -> tuple[list[dict[str, str]], str | None]:
    """Validate chat messages; system/developer messages are folded into `system`.

    Returned as dicts: JobSpec validates them into ChatMessage once, with the whole spec."""
    if not isinstance(raw, list):
        raise _BadLine(f"{where} must be a list, got {_type_name(raw)}")
    systems = [system] if system else []
    out: list[dict[str, str]] = []
    for i, msg in enumerate(raw):
        # error texts are built only on failure: this loop runs for every message of every line
        if not isinstance(msg, dict):
            raise _BadLine(f"{where}[{i}] must be an object, got {_type_name(msg)}")
        if not msg.keys() <= MESSAGE_FIELDS:
            _unknown(msg, MESSAGE_FIELDS, f"{where}[{i}].")
        role = msg.get("role")
        role = ROLES.get(role) if isinstance(role, str) else None
        if role is None:
            raise _BadLine(f"{where}[{i}].role {json.dumps(msg.get('role'))} is not supported")
        content = msg.get("content")
        if not isinstance(content, str):
            content = _content(content, f"{where}[{i}].content")
        if role == "system":
            systems.append(content)
        else:
            out.append({"role": role, "content": content})
    if not any(m["role"] == "user" and m["content"].strip() for m in out):
        raise _BadLine(f"missing text: {where} has no non-empty user message")
    return out, "\n\n".join(s for s in systems if s.strip()) or None


def _content(raw: Any, where: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):  # OpenAI content parts: only text can be honoured
        texts = []
        for j, part in enumerate(raw):
            if not (isinstance(part, dict) and part.get("type") == "text"):
                kind = part.get("type") if isinstance(part, dict) else _type_name(part)
                raise _BadLine(f"{where}[{j}]: content part {json.dumps(kind)} is not supported")
            if not isinstance(part.get("text"), str):
                raise _BadLine(f"{where}[{j}].text must be a string")
            texts.append(part["text"])
        return "\n".join(texts)
    raise _BadLine(f"{where} must be a string, got {_type_name(raw)}")


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _BadLine(f"{key} must be a string, got {_type_name(value)}")
    return value or None


def _max_tokens(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadLine(f"{where} must be an integer, got {json.dumps(value)}")
    if not 0 < value <= MAX_TOKENS_LIMIT:
        raise _BadLine(f"{where} must be between 1 and {MAX_TOKENS_LIMIT}, got {value}")
    return value


def _temperature(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadLine(f"{where} must be a number, got {json.dumps(value)}")
    if not (math.isfinite(value) and 0 <= value <= 2):
        raise _BadLine(f"{where} must be between 0 and 2, got {value}")
    return float(value)


def _metadata(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _BadLine(f"{where} must be an object, got {_type_name(value)}")
    nested = any(isinstance(v, dict | list) for v in value.values())
    if nested and _depth(value) > MAX_METADATA_DEPTH:
        raise _BadLine(f"{where} is nested deeper than {MAX_METADATA_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _cache(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise _BadLine(f"cache must be true or false, got {json.dumps(value)}")
    return value


def _check_text(obj: Any) -> None:
    """Reject NUL characters and unpaired surrogates anywhere: Postgres cannot store them."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_text(key)
            _check_text(value)
    elif isinstance(obj, list):
        for value in obj:
            _check_text(value)
    elif isinstance(obj, str):
        if "\x00" in obj:
            raise _BadLine("text contains a NUL character (\\u0000)")
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _BadLine("text contains an unpaired UTF-16 surrogate escape") from exc


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
