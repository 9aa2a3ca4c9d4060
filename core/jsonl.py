"""Parse and validate a JSONL batch file into `JobSpec`s, all lines before anything is written.

Owns: the file and line loop, the two accepted line formats and the line-level rules (custom_id,
model, token limits, metadata). The rules for messages live in `core.jsonl_messages`, those for
response_format, tools and sampling in `core.jsonl_features`, the scalar checks in
`core.jsonl_common`. Must not: touch the database, the broker or provider code; it is a pure
function of the file, the config and (optionally) a capabilities function.

Embedding lines (issue 17: native with `input`, OpenAI Batch with url ``/v1/embeddings``) are
parsed by `core.jsonl_embed`; a file may mix them with chat lines. Accepted chat lines (blank
lines are skipped), the OpenAI chat request surface in both:

- native: ``{"custom_id", "model"?, "prompt" | "messages", "system"?, "max_tokens"?,
  "max_completion_tokens"?, "temperature"?, "metadata"?, "cache"?}`` plus the feature fields
  ``response_format``, ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``stop``,
  ``top_p``, ``seed``, ``presence_penalty``, ``frequency_penalty``, ``user`` at top level;
- OpenAI Batch: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
  "body": {"model"?, "messages", "max_tokens" | "max_completion_tokens"?, "temperature"?,
  "metadata"?, "n": 1?, "stream": false?, <the feature fields>}}``.

System messages inside ``messages`` (role ``system`` or ``developer``) move to ``system``.
Anything that cannot be honoured (other body parameters such as ``logprobs``, audio or file
parts, ``n`` > 1) is a bad line rather than silently dropped. Any bad line rejects the whole
file: `InputError` carries ``"line N: reason"`` entries, capped at `max_errors` plus ``"... and
K more"``. With `capabilities` given, a line whose features no deployment of its model (nor of
its fallbacks) can honour is bad too: ``no deployment of MODEL supports FEATURE``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from core import jsonl_common as common
from core import jsonl_embed as embed
from core.jsonl_common import BadLine, reject_unknown, type_name
from core.jsonl_features import FEATURE_FIELDS, Capabilities, CapabilityCheck, FeatureParser
from core.jsonl_messages import messages
from schemas.config import LLMConfig
from schemas.job import JobSpec
from schemas.request import required_features

__all__ = [
    "MAX_LINE_BYTES",
    "Capabilities",
    "InputError",
    "check_specs",
    "native_line",
    "iter_file",
    "iter_lines",
    "parse_file",
    "parse_lines",
    "validate_file",
]

MAX_LINE_BYTES = 1 << 20  # 1 MiB per line, newline excluded
MAX_CUSTOM_ID = 256
OPENAI_URL = "/v1/chat/completions"

NATIVE_FIELDS = (
    frozenset({"custom_id", "model", "prompt", "messages", "system", "max_tokens"})
    | {"max_completion_tokens", "temperature", "metadata", "cache"}
    | FEATURE_FIELDS
)
OPENAI_FIELDS = frozenset({"custom_id", "method", "url", "body"})
BODY_FIELDS = (
    frozenset({"model", "messages", "max_tokens", "max_completion_tokens", "temperature"})
    | {"metadata", "n", "stream"}
    | FEATURE_FIELDS
)
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


def parse_file(
    path: str | Path,
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
    *,
    capabilities: Capabilities | None = None,
) -> list[JobSpec]:
    """Read and validate every line of `path`; return specs in input order, models resolved.

    Holds every spec in memory: a large file is better validated with `validate_file` and
    then streamed with `iter_file` (what submit does).

    Args:
        capabilities: what a deployment can honour (the provider registry's resolver); None
            skips the capability check (workers still skip deployments that cannot serve).

    Raises:
        InputError: any bad line (or an empty file / unreadable path); nothing is returned.
    """
    return list(iter_file(path, config, default_model, max_errors, capabilities=capabilities))


def validate_file(
    path: str | Path,
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
    *,
    capabilities: Capabilities | None = None,
) -> int:
    """Check every line of `path`, keeping no spec; returns the number of job lines.

    Memory stays flat in the file's length (only the custom_ids seen are kept, to find
    duplicates). Raises InputError exactly as `parse_file` does."""
    specs = iter_file(path, config, default_model, max_errors, capabilities=capabilities)
    return sum(1 for _ in specs)


def iter_file(
    path: str | Path,
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
    *,
    capabilities: Capabilities | None = None,
) -> Iterator[JobSpec]:
    """Stream `path`'s specs in input order, validating each line as it is read.

    Specs are yielded only until the first bad line; the rest of the file is then checked
    (errors only) and InputError is raised at the end. A consumer that must be all-or-nothing
    (submit) therefore validates first (`validate_file`) or writes inside a transaction the
    InputError rolls back.
    """
    try:
        with open(path, "rb") as f:
            yield from iter_lines(
                _physical_lines(f),
                config,
                default_model,
                max_errors,
                str(path),
                capabilities=capabilities,
            )
    except OSError as exc:
        raise InputError([f"cannot read file: {exc.strerror or exc}"], str(path)) from exc


def parse_lines(
    lines: Iterable[tuple[int, bytes | str | None]],
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
    source: str | None = None,
    *,
    capabilities: Capabilities | None = None,
) -> list[JobSpec]:
    """Validate numbered raw lines (None = oversized). See `parse_file`."""
    specs = iter_lines(lines, config, default_model, max_errors, source, capabilities=capabilities)
    return list(specs)


def iter_lines(
    lines: Iterable[tuple[int, bytes | str | None]],
    config: LLMConfig,
    default_model: str | None = None,
    max_errors: int = 20,
    source: str | None = None,
    *,
    capabilities: Capabilities | None = None,
) -> Iterator[JobSpec]:
    """`parse_lines`, streamed: see `iter_file` for when specs stop and InputError comes."""
    ctx = _Context(config, default_model, capabilities)
    if ctx.model_error:
        raise InputError([ctx.model_error], source)
    errors: list[str] = []
    bad = specs = 0
    for line_no, raw in lines:
        try:
            spec = ctx.line(line_no, raw)
        except BadLine as exc:
            bad += 1
            if len(errors) < max_errors:
                errors.append(f"line {line_no}: {exc}")
            continue
        if spec is not None:
            specs += 1
            if not bad:
                yield spec
    if bad > len(errors):
        errors.append(f"... and {bad - len(errors)} more")
    if not errors and not specs:
        errors, bad = ["empty file: no job lines"], 1
    if errors:
        raise InputError(errors, source, bad)


def check_specs(
    specs: Sequence[JobSpec],
    config: LLMConfig,
    default_model: str | None = None,
    *,
    capabilities: Capabilities | None = None,
) -> list[JobSpec]:
    """Apply the file rules to specs built in Python (each spec is line N, counted from 1):
    models resolved, custom_ids unique, features checked exactly as in a native line."""
    lines = ((i, json.dumps(native_line(s))) for i, s in enumerate(specs, 1))
    return parse_lines(lines, config, default_model, capabilities=capabilities)


def native_line(spec: JobSpec) -> dict[str, Any]:
    """`spec` as a native JSONL line (OpenAI names, nested tool-call and tool-choice forms)."""
    if spec.embedding is not None:
        return embed.native_line(spec.custom_id, spec.model, spec.embedding, spec.metadata)
    line: dict[str, Any] = {"custom_id": spec.custom_id}
    for name in ("model", "system", "max_tokens", "temperature"):
        if (value := getattr(spec, name)) is not None:
            line[name] = value
    line["messages"] = [m.openai() for m in spec.messages]
    line["metadata"] = spec.metadata
    line["cache"] = spec.cache
    line.update(spec.features.openai_params())
    return line


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
    """Per-file state: known models, the resolved default, custom_ids seen so far, schemas
    already checked, capability verdicts."""

    def __init__(
        self, config: LLMConfig, default_model: str | None, capabilities: Capabilities | None
    ) -> None:
        self.models = set(config.model_names())
        self.model_list = ", ".join(config.model_names()[:10]) or "none configured"
        self.model_error: str | None = None
        if default_model is not None and default_model not in self.models:
            self.model_error = (
                f"--model: unknown model {default_model!r} (known: {self.model_list})"
            )
        self.default = default_model or config.default_model_name()
        self.seen: dict[str, int] = {}
        self.features = FeatureParser()
        self.capable = CapabilityCheck(config, capabilities) if capabilities else None
        self.modes = embed.ModeCheck(config)  # issue 17: chat lines and embedding lines

    def line(self, line_no: int, raw: bytes | str | None) -> JobSpec | None:
        if raw is None:
            raise BadLine(f"line is longer than {MAX_LINE_BYTES} bytes")
        text = common.decode_line(raw, first=line_no == 1)
        if not text or text.isspace():  # blank lines are skipped (isspace stops early: no copy)
            return None
        obj = common.loads_object(text)
        if _is_openai(obj):
            fields = self._openai_fields(obj)
        else:
            fields = self._native_fields(obj)
        custom_id = common.custom_id(obj, MAX_CUSTOM_ID)
        fields["model"] = self._model(fields.get("model"))
        self.modes.check(fields["model"], fields.get("embedding"))
        if _SUSPECT_ESCAPE.search(text):
            common.check_text(obj)
        if custom_id in self.seen:
            raise BadLine(
                f"duplicate custom_id {custom_id!r} (first on line {self.seen[custom_id]})"
            )
        if fields.get("features") is None:
            fields.pop("features", None)
        try:  # the checks above make this pass; pydantic stays the final word on the schema
            spec = JobSpec(custom_id=custom_id, **fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise BadLine(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
        if self.capable is not None and spec.embedding is None:
            self.capable.check(fields["model"], required_features(spec.features, spec.messages))
        self.seen[custom_id] = line_no
        return spec

    def _model(self, name: Any) -> str:
        if name is None:
            if self.default is None:
                raise BadLine("no model given and no default model configured")
            return self.default
        if not isinstance(name, str) or not name:
            raise BadLine("model must be a non-empty string")
        if name not in self.models:
            raise BadLine(f"unknown model {name!r} (known: {self.model_list})")
        return name

    def _native_fields(self, obj: dict[str, Any]) -> dict[str, Any]:
        if embed.is_native_embedding(obj):
            return embed.native_fields(obj)
        reject_unknown(obj, NATIVE_FIELDS)
        prompt, msgs = obj.get("prompt"), obj.get("messages")
        if prompt is not None and msgs is not None:
            raise BadLine("give either prompt or messages, not both")
        system = common.optional_str(obj, "system")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise BadLine(f"prompt must be a string, got {type_name(prompt)}")
            if not prompt.strip():
                raise BadLine("missing text: prompt is empty")
            out = [{"role": "user", "content": prompt}]
        elif msgs is not None:
            out, system = messages(msgs, system, "messages")
        else:
            raise BadLine("missing text: give prompt or messages")
        return {
            "model": obj.get("model"),
            "messages": out,
            "system": system,
            "max_tokens": _max_tokens(obj, ""),
            "temperature": common.temperature(obj.get("temperature"), "temperature"),
            "metadata": common.metadata(obj.get("metadata"), "metadata"),
            "cache": common.cache(obj.get("cache")),
            "features": self.features.parse(obj, ""),
        }

    def _openai_fields(self, obj: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(obj, OPENAI_FIELDS)
        if obj.get("method") != "POST":
            raise BadLine(f'method must be "POST", got {json.dumps(obj.get("method"))}')
        if obj.get("url") == embed.EMBEDDINGS_URL:
            return embed.openai_fields(obj.get("body"))
        if obj.get("url") != OPENAI_URL:
            urls = f'"{OPENAI_URL}" or "{embed.EMBEDDINGS_URL}"'
            raise BadLine(f"url must be {urls}, got {json.dumps(obj.get('url'))}")
        body = obj.get("body")
        if not isinstance(body, dict):
            raise BadLine(f"body must be an object, got {type_name(body)}")
        reject_unknown(body, BODY_FIELDS, "body.")
        if body.get("n") not in (None, 1):
            raise BadLine("body.n must be 1 (one completion per line)")
        if body.get("stream") not in (None, False):
            raise BadLine("body.stream must be false in a batch")
        if body.get("messages") is None:
            raise BadLine("missing text: body.messages is required")
        msgs, system = messages(body["messages"], None, "body.messages")
        return {
            "model": body.get("model"),
            "messages": msgs,
            "system": system,
            "max_tokens": _max_tokens(body, "body."),
            "temperature": common.temperature(body.get("temperature"), "body.temperature"),
            "metadata": common.metadata(body.get("metadata"), "body.metadata"),
            "features": self.features.parse(body, "body."),
        }


def _max_tokens(obj: dict[str, Any], prefix: str) -> int | None:
    """`max_tokens` or its newer name `max_completion_tokens`; both given must agree."""
    max_tokens = common.max_tokens(obj.get("max_tokens"), f"{prefix}max_tokens")
    newer = common.max_tokens(obj.get("max_completion_tokens"), f"{prefix}max_completion_tokens")
    if max_tokens is not None and newer is not None and max_tokens != newer:
        raise BadLine(f"{prefix}max_tokens and {prefix}max_completion_tokens disagree")
    return max_tokens if max_tokens is not None else newer


def _is_openai(obj: dict[str, Any]) -> bool:
    return "body" in obj or "url" in obj or "method" in obj
