"""Chat messages of a JSONL line: roles, content parts, images, tool calls and tool results.

Owns: every rule about ``messages`` in both line formats. System and developer messages are
folded into the job's `system`; text-only content parts are joined into one string (as before
issue 15, so plain jobs keep their stored shape and cache key); parts are kept only when an
image is present. Images: user messages only; an https URL, or a ``data:image/(png|jpeg|gif|
webp);base64,`` URL whose payload is valid base64 of an image of that type (Anthropic rejects a
mismatched media type, so it is caught here). Tool calls: assistant messages only, unique ids,
arguments a JSON object as text; every call is answered by a `tool` message (``tool_call_id``)
before the next non-tool message, as OpenAI and Anthropic require. The conversation opens
with a user turn (after system messages): Anthropic answers 400 otherwise, on every
deployment alike. Must not: do I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any
from urllib.parse import urlsplit

from core.jsonl_common import (
    BadLine,
    json_text,
    need_object,
    need_str,
    reject_unknown,
    type_name,
)
from schemas.request import NAME_PATTERN

MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id"})
PLAIN_MESSAGE_FIELDS = frozenset({"role", "content"})
ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
TOOL_CALL_FIELDS = frozenset({"id", "type", "function"})
CALL_FUNCTION_FIELDS = frozenset({"name", "arguments"})
TEXT_PART_FIELDS = frozenset({"type", "text"})
IMAGE_PART_FIELDS = frozenset({"type", "image_url"})
IMAGE_URL_FIELDS = frozenset({"url", "detail"})
DETAILS = ("auto", "low", "high")
_NAME = re.compile(NAME_PATTERN)
_DATA_URL = re.compile(r"data:image/([a-z0-9.+-]+);base64,(.*)", re.DOTALL)
_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
}

Message = dict[str, Any]


def check_name(value: Any, where: str) -> str:
    """A function name: 1 to 64 of ``A-Z a-z 0-9 _ -`` (OpenAI's rule, shared by tools)."""
    name = need_str(value, where)
    if not _NAME.match(name):
        raise BadLine(f"{where}: {name!r} must be 1 to 64 letters, digits, '_' or '-'")
    return name


def messages(raw: Any, system: str | None, where: str) -> tuple[list[Message], str | None]:
    """Validate chat messages; system/developer messages are folded into `system`.

    Returned as dicts: JobSpec validates them into ChatMessage once, with the whole spec."""
    if not isinstance(raw, list):
        raise BadLine(f"{where} must be a list, got {type_name(raw)}")
    systems = [system] if system else []
    out: list[Message] = []
    calls = _ToolCalls()
    for i, msg in enumerate(raw):
        # This loop runs for every message of every line: a plain text turn takes the short
        # path, and error texts (`where` of the message) are built only when needed.
        if isinstance(msg, dict) and msg.keys() <= PLAIN_MESSAGE_FIELDS and not calls.pending:
            role, content = msg.get("role"), msg.get("content")
            role = ROLES.get(role) if isinstance(role, str) else None
            if isinstance(content, str) and role is not None and role != "tool":
                if role == "system":
                    systems.append(content)
                else:
                    out.append({"role": role, "content": content})
                continue
        _message(msg, f"{where}[{i}]", systems, out, calls)
    calls.all_answered(where)
    if not any(m["role"] == "user" and _non_empty(m["content"]) for m in out):
        raise BadLine(f"missing text: {where} has no non-empty user message")
    if out[0]["role"] != "user":  # Anthropic refuses it (400), and no fallback would help
        raise BadLine(f"{where}: the first non-system message must be a user message, not an "
                      f"{out[0]['role']} message")  # fmt: skip
    return out, "\n\n".join(s for s in systems if s.strip()) or None


def _message(
    msg: Any, where: str, systems: list[str], out: list[Message], calls: _ToolCalls
) -> None:
    """One message in full: any role, content parts, tool calls and results."""
    if not isinstance(msg, dict):
        raise BadLine(f"{where} must be an object, got {type_name(msg)}")
    if not msg.keys() <= MESSAGE_FIELDS:
        reject_unknown(msg, MESSAGE_FIELDS, f"{where}.")
    role = msg.get("role")
    role = ROLES.get(role) if isinstance(role, str) else None
    if role is None:
        raise BadLine(f"{where}.role {json.dumps(msg.get('role'))} is not supported")
    if role != "tool":
        calls.all_answered(where)
    if not msg.keys() <= PLAIN_MESSAGE_FIELDS:
        _fields_fit_role(msg, role, where)
    if role == "system":
        systems.append(_text(msg.get("content"), f"{where}.content"))
    elif role == "user":
        out.append({"role": "user", "content": _user_content(msg.get("content"), where)})
    elif role == "assistant":
        out.append(_assistant(msg, where, calls))
    else:
        call_id = calls.answer(msg.get("tool_call_id"), f"{where}.tool_call_id")
        content = _text(msg.get("content"), f"{where}.content")
        out.append({"role": "tool", "content": content, "tool_call_id": call_id})


def _fields_fit_role(msg: dict[str, Any], role: str, where: str) -> None:
    if "tool_calls" in msg and role != "assistant":
        raise BadLine(f"{where}.tool_calls: only an assistant message has tool calls")
    if "tool_call_id" in msg and role != "tool":
        raise BadLine(f"{where}.tool_call_id: only a tool message answers a tool call")


def _non_empty(content: str | list[Any]) -> bool:
    return bool(content.strip()) if isinstance(content, str) else True  # parts hold an image


class _ToolCalls:
    """The tool-call ids asked so far in one conversation, and those not answered yet."""

    def __init__(self) -> None:
        self.asked: set[str] = set()
        self.pending: dict[str, str] = {}  # id -> where it was asked, in order

    def ask(self, call_id: str, where: str) -> None:
        if call_id in self.asked:
            raise BadLine(f"{where}: tool call id {call_id!r} is used twice")
        self.asked.add(call_id)
        self.pending[call_id] = where

    def answer(self, value: Any, where: str) -> str:
        if value is None:
            raise BadLine(f'{where}: required for role "tool"')
        call_id = need_str(value, where)
        if call_id in self.pending:
            del self.pending[call_id]
            return call_id
        if call_id in self.asked:
            raise BadLine(f"{where}: tool call {call_id!r} is already answered")
        raise BadLine(f"{where}: {call_id!r} is not the id of an earlier assistant tool call")

    def all_answered(self, where: str) -> None:
        if self.pending:
            call_id, asked = next(iter(self.pending.items()))
            raise BadLine(
                f"{where}: tool call {call_id!r} ({asked}) has no tool message answering it "
                "(tool messages must follow the assistant message that made the calls)"
            )


def _assistant(msg: dict[str, Any], where: str, calls: _ToolCalls) -> Message:
    raw_calls = msg.get("tool_calls")
    if raw_calls is None:
        return {"role": "assistant", "content": _text(msg.get("content"), f"{where}.content")}
    if not isinstance(raw_calls, list) or not raw_calls:
        raise BadLine(f"{where}.tool_calls must be a non-empty array, got {type_name(raw_calls)}")
    content = msg.get("content")
    out: Message = {
        "role": "assistant",
        "content": None if content is None else _text(content, f"{where}.content"),
        "tool_calls": [_tool_call(c, f"{where}.tool_calls[{k}]") for k, c in enumerate(raw_calls)],
    }
    for k, call in enumerate(out["tool_calls"]):
        calls.ask(call["id"], f"{where}.tool_calls[{k}].id")
    return out


def _tool_call(raw: Any, where: str) -> dict[str, str]:
    call = need_object(raw, where)
    reject_unknown(call, TOOL_CALL_FIELDS, f"{where}.")
    call_id = need_str(call.get("id"), f"{where}.id")
    if call.get("type", "function") != "function":
        raise BadLine(f'{where}.type must be "function", got {json.dumps(call.get("type"))}')
    fn = need_object(call.get("function"), f"{where}.function")
    reject_unknown(fn, CALL_FUNCTION_FIELDS, f"{where}.function.")
    name = check_name(fn.get("name"), f"{where}.function.name")
    arguments = need_str(fn.get("arguments"), f"{where}.function.arguments", non_empty=False)
    parsed = json_text(arguments, f"{where}.function.arguments")
    if not isinstance(parsed, dict):
        raise BadLine(
            f"{where}.function.arguments must encode a JSON object, got {type_name(parsed)}"
        )
    return {"id": call_id, "name": name, "arguments": arguments}


def _text(raw: Any, where: str) -> str:
    """Content that can only be text: a string, or text parts joined with newlines."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        return "\n".join(
            _text_part(part, f"{where}[{j}]", images=False) for j, part in enumerate(raw)
        )
    raise BadLine(f"{where} must be a string, got {type_name(raw)}")


def _user_content(raw: Any, where: str) -> str | list[dict[str, Any]]:
    """A user turn's content: a string, text parts joined, or parts when an image is present."""
    if isinstance(raw, str):
        return raw
    where = f"{where}.content"
    if not isinstance(raw, list):
        raise BadLine(
            f"{where} must be a string or an array of content parts, got {type_name(raw)}"
        )
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(raw):
        if isinstance(part, dict) and part.get("type") == "image_url":
            parts.append(_image_part(part, f"{where}[{j}]"))
        else:
            parts.append({"type": "text", "text": _text_part(part, f"{where}[{j}]", images=True)})
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _text_part(part: Any, where: str, images: bool) -> str:
    if not (isinstance(part, dict) and part.get("type") == "text"):
        kind = part.get("type") if isinstance(part, dict) else type_name(part)
        if kind == "image_url" and not images:
            raise BadLine(f"{where}: image parts are only allowed in user messages")
        raise BadLine(f"{where}: content part {json.dumps(kind)} is not supported")
    reject_unknown(part, TEXT_PART_FIELDS, f"{where}.")
    if not isinstance(part.get("text"), str):
        raise BadLine(f"{where}.text must be a string")
    return part["text"]


def _image_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    reject_unknown(part, IMAGE_PART_FIELDS, f"{where}.")
    image = need_object(part.get("image_url"), f"{where}.image_url")
    reject_unknown(image, IMAGE_URL_FIELDS, f"{where}.image_url.")
    url = need_str(image.get("url"), f"{where}.image_url.url")
    check_image_url(url, f"{where}.image_url.url")
    out: dict[str, Any] = {"url": url}
    detail = image.get("detail")
    if detail is not None:
        if detail not in DETAILS:
            raise BadLine(
                f"{where}.image_url.detail must be one of auto, low, high, got {json.dumps(detail)}"
            )
        out["detail"] = detail
    return {"type": "image_url", "image_url": out}


def check_image_url(url: str, where: str) -> None:
    """An https URL with a host, or a data: URL holding base64 of a png/jpeg/gif/webp image."""
    if url.startswith("data:"):
        _check_data_url(url, where)
        return
    if not url.startswith("https://"):
        scheme = url.split(":", 1)[0] if ":" in url else ""
        got = f"scheme {scheme!r}" if scheme and "/" not in scheme else "no scheme"
        if scheme.lower() == "https":
            got = f"{url[:20]!r}"
        raise BadLine(f"{where}: must be an https:// URL or a data:image/... URL, got {got}")
    if any(c.isspace() for c in url):
        raise BadLine(f"{where}: the URL contains whitespace")
    try:
        host = urlsplit(url).hostname
    except ValueError as exc:
        raise BadLine(f"{where}: not a valid URL ({exc})") from exc
    if not host:
        raise BadLine(f"{where}: the URL has no host")


def _check_data_url(url: str, where: str) -> None:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise BadLine(f"{where}: a data URL must look like data:image/<type>;base64,<data>")
    kind, payload = match.groups()
    if kind not in ("png", "jpeg", "gif", "webp"):
        raise BadLine(
            f"{where}: image type 'image/{kind}' is not supported "
            "(allowed: image/png, image/jpeg, image/gif, image/webp)"
        )
    if not payload:
        raise BadLine(f"{where}: the data URL holds no data")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadLine(f"{where}: the data is not valid base64 ({exc})") from exc
    if not _looks_like(kind, data):
        raise BadLine(f"{where}: the data is not a {kind.upper()} image (check the media type)")


def _looks_like(kind: str, data: bytes) -> bool:
    if kind == "webp":
        return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return data.startswith(_MAGIC[kind])
