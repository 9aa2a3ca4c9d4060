"""The request features of a JSONL line (response_format, tools, tool_choice,
parallel_tool_calls, sampling) and the submit-time capability check.

Owns: every rule about those fields, in both line formats (top level in native lines, in
``body`` in OpenAI Batch lines), with reasons naming the field (``body.tools[0].function.name:
...``). A ``response_format`` schema must itself be a valid JSON Schema (draft 2020-12) and a
tool's ``parameters`` a JSON Schema of ``"type": "object"``; each distinct schema is checked
once per file (a check costs milliseconds). ``{"type": "text"}`` is OpenAI's default and is
normalised away. Must not: do I/O or import provider code: what a deployment can honour comes
in as a function (`Capabilities`), which the CLI takes from the provider registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from core.jsonl_common import (
    BadLine,
    integer,
    need_object,
    need_str,
    number,
    optional_bool,
    reject_unknown,
    type_name,
)
from core.jsonl_messages import check_name
from schemas.config import LLMConfig, LLMModelConfig
from schemas.request import INT64, MAX_STOP, MAX_TOOLS, Feature, Features, in_order

FEATURE_FIELDS = frozenset(
    {"response_format", "tools", "tool_choice", "parallel_tool_calls"}
    | {"stop", "top_p", "seed", "presence_penalty", "frequency_penalty", "user"}
)
FORMAT_TYPES = ("text", "json_object", "json_schema")
FORMAT_FIELDS = frozenset({"type", "json_schema"})
PLAIN_FORMAT_FIELDS = frozenset({"type"})
JSON_SCHEMA_FIELDS = frozenset({"name", "schema", "description", "strict"})
TOOL_FIELDS = frozenset({"type", "function"})
FUNCTION_FIELDS = frozenset({"name", "description", "parameters", "strict"})
CHOICE_FIELDS = frozenset({"type", "function"})
MAX_USER = 256

Capabilities = Callable[[LLMModelConfig], frozenset[Feature]]
"""What one deployment can honour (the provider registry's resolver)."""


class FeatureParser:
    """Per-file state for the feature fields: the verdict on each distinct schema seen."""

    def __init__(self) -> None:
        self._schemas: dict[str, str | None] = {}  # canonical schema -> reason, None = valid

    def parse(self, obj: dict[str, Any], prefix: str) -> Features | None:
        """The features of one line (`prefix`: "" or "body."); None when it asks for none."""
        if obj.keys().isdisjoint(FEATURE_FIELDS):  # the common, plain-text case
            return None
        fmt = self._response_format(obj.get("response_format"), f"{prefix}response_format")
        tools = self._tools(obj.get("tools"), f"{prefix}tools")
        names = [t["function"]["name"] for t in tools or ()]
        given = f"given without {prefix}tools"
        choice = _tool_choice(obj.get("tool_choice"), f"{prefix}tool_choice", names, given)
        parallel = optional_bool(obj.get("parallel_tool_calls"), f"{prefix}parallel_tool_calls")
        if parallel is not None and not names:
            raise BadLine(f"{prefix}parallel_tool_calls: {given}")
        sampling = {
            "stop": _stop(obj.get("stop"), f"{prefix}stop"),
            "top_p": number(obj.get("top_p"), f"{prefix}top_p", 0, 1),
            "seed": integer(obj.get("seed"), f"{prefix}seed", -INT64, INT64 - 1),
            "presence_penalty": number(
                obj.get("presence_penalty"), f"{prefix}presence_penalty", -2, 2
            ),
            "frequency_penalty": number(
                obj.get("frequency_penalty"), f"{prefix}frequency_penalty", -2, 2
            ),
            "user": _user(obj.get("user"), f"{prefix}user"),
        }
        try:  # the checks above make this pass; pydantic stays the final word
            features = Features(
                response_format=fmt,
                tools=tools,
                tool_choice=choice,
                parallel_tool_calls=parallel,
                sampling={k: v for k, v in sampling.items() if v is not None},
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            raise BadLine(f"{prefix}{'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
        return None if features.is_empty else features

    def _response_format(self, raw: Any, where: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        fmt = need_object(raw, where)
        kind = fmt.get("type")
        if kind not in FORMAT_TYPES:
            raise BadLine(
                f"{where}.type must be one of {', '.join(FORMAT_TYPES)}, got {json.dumps(kind)}"
            )
        allowed = FORMAT_FIELDS if kind == "json_schema" else PLAIN_FORMAT_FIELDS
        reject_unknown(fmt, allowed, f"{where}.")
        if kind == "text":
            return None  # OpenAI's default: the same request as no response_format
        if kind == "json_object":
            return {"type": "json_object"}
        spec = need_object(fmt.get("json_schema"), f"{where}.json_schema")
        reject_unknown(spec, JSON_SCHEMA_FIELDS, f"{where}.json_schema.")
        out: dict[str, Any] = {"name": check_name(spec.get("name"), f"{where}.json_schema.name")}
        if spec.get("schema") is None:
            raise BadLine(f"{where}.json_schema.schema: required (a JSON Schema object)")
        out["schema"] = self.check_schema(spec["schema"], f"{where}.json_schema.schema")
        if spec.get("description") is not None:
            out["description"] = need_str(
                spec["description"], f"{where}.json_schema.description", False
            )
        strict = optional_bool(spec.get("strict"), f"{where}.json_schema.strict")
        if strict is not None:
            out["strict"] = strict
        return {"type": "json_schema", "json_schema": out}

    def _tools(self, raw: Any, where: str) -> list[dict[str, Any]] | None:
        if raw is None:
            return None
        if not isinstance(raw, list):
            raise BadLine(f"{where} must be an array, got {type_name(raw)}")
        if not 1 <= len(raw) <= MAX_TOOLS:
            raise BadLine(f"{where} must hold 1 to {MAX_TOOLS} tools, got {len(raw)}")
        out: list[dict[str, Any]] = []
        seen: dict[str, int] = {}
        for k, raw_tool in enumerate(raw):
            w = f"{where}[{k}]"
            tool = need_object(raw_tool, w)
            reject_unknown(tool, TOOL_FIELDS, f"{w}.")
            if tool.get("type", "function") != "function":
                raise BadLine(
                    f"{w}.type: {json.dumps(tool.get('type'))} is not supported (allowed: function)"
                )
            fn = need_object(tool.get("function"), f"{w}.function")
            reject_unknown(fn, FUNCTION_FIELDS, f"{w}.function.")
            name = check_name(fn.get("name"), f"{w}.function.name")
            if name in seen:
                raise BadLine(
                    f"{w}.function.name: {name!r} is already declared by {where}[{seen[name]}]"
                )
            seen[name] = k
            out_fn: dict[str, Any] = {"name": name}
            if fn.get("description") is not None:
                out_fn["description"] = need_str(
                    fn["description"], f"{w}.function.description", False
                )
            if fn.get("parameters") is not None:
                params = self.check_schema(fn["parameters"], f"{w}.function.parameters")
                if params.get("type") != "object":
                    raise BadLine(
                        f'{w}.function.parameters must be a JSON Schema with "type": "object"'
                    )
                out_fn["parameters"] = params
            strict = optional_bool(fn.get("strict"), f"{w}.function.strict")
            if strict is not None:
                out_fn["strict"] = strict
            out.append({"type": "function", "function": out_fn})
        return out

    def check_schema(self, raw: Any, where: str) -> dict[str, Any]:
        """`raw` if it is a JSON object that is a valid JSON Schema (draft 2020-12)."""
        schema = need_object(raw, where)
        canonical = json.dumps(schema, sort_keys=True)
        if canonical not in self._schemas:
            self._schemas[canonical] = _schema_problem(schema)
        problem = self._schemas[canonical]
        if problem is not None:
            raise BadLine(f"{where}: not a valid JSON Schema: {problem}")
        return schema


def _schema_problem(schema: dict[str, Any]) -> str | None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = "/".join(map(str, exc.path))
        return f"{exc.message} (at {at})" if at else exc.message
    except RecursionError:
        return "nested too deeply"
    return None


def _tool_choice(raw: Any, where: str, names: list[str], given: str) -> Any:
    if raw is None:
        return None
    if not names:
        raise BadLine(f"{where}: {given}")
    if raw in ("auto", "none", "required"):
        return raw
    if not isinstance(raw, dict):
        raise BadLine(
            f'{where} must be "auto", "none", "required" or '
            f'{{"type": "function", "function": {{"name": ...}}}}, got {json.dumps(raw)}'
        )
    reject_unknown(raw, CHOICE_FIELDS, f"{where}.")
    if raw.get("type") != "function":
        raise BadLine(f'{where}.type must be "function", got {json.dumps(raw.get("type"))}')
    fn = need_object(raw.get("function"), f"{where}.function")
    reject_unknown(fn, frozenset({"name"}), f"{where}.function.")
    name = check_name(fn.get("name"), f"{where}.function.name")
    if name not in names:
        raise BadLine(
            f"{where}.function.name: {name!r} is not a declared tool (declared: {', '.join(names)})"
        )
    return {"name": name}


def _stop(raw: Any, where: str) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if not raw:
            raise BadLine(f"{where} must not be empty")
        return [raw]
    if not isinstance(raw, list):
        raise BadLine(f"{where} must be a string or an array of strings, got {type_name(raw)}")
    if len(raw) > MAX_STOP:
        raise BadLine(f"{where} may hold at most {MAX_STOP} strings, got {len(raw)}")
    return [need_str(s, f"{where}[{k}]") for k, s in enumerate(raw)] or None


def _user(raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    user = need_str(raw, where, non_empty=False)
    if len(user) > MAX_USER:
        raise BadLine(f"{where} is longer than {MAX_USER} characters")
    return user


class CapabilityCheck:
    """Submit-time check that some deployment of a line's model, or of its configured
    fallbacks (one level, as routing uses them), honours every feature the line needs.

    Verdicts are memoised per (model, features) and capabilities per deployment id: a file
    names few models and few feature sets.
    """

    def __init__(self, config: LLMConfig, capabilities: Capabilities) -> None:
        self.config = config
        self.capabilities = capabilities
        self._caps: dict[str, frozenset[Feature]] = {}
        self._verdicts: dict[tuple[str, frozenset[Feature]], str | None] = {}

    def check(self, model: str, need: frozenset[Feature]) -> None:
        """BadLine ``no deployment of MODEL supports FEATURE`` when none can serve `need`."""
        if not need:
            return
        key = (model, need)
        if key not in self._verdicts:
            self._verdicts[key] = self._verdict(model, need)
        reason = self._verdicts[key]
        if reason is not None:
            raise BadLine(reason)

    def _verdict(self, model: str, need: frozenset[Feature]) -> str | None:
        fallbacks = self.config.fallbacks.get(model, [])
        every = [
            self._of(d) for name in (model, *fallbacks) for d in self.config.deployments_for(name)
        ]
        able, asked = every, []
        # Features are added in declaration order; the one that leaves no deployment is named,
        # with the earlier ones that the deployments honouring it lack ("together with").
        for feature in in_order(need):
            able = [caps for caps in able if feature in caps]
            if not able:
                having = [caps for caps in every if feature in caps]
                lacking = [f.value for f in asked if any(f not in caps for caps in having)]
                together = f" together with {', '.join(lacking)}" if lacking else ""
                checked = f" (fallbacks checked: {', '.join(fallbacks)})" if fallbacks else ""
                return f"no deployment of {model} supports {feature}{together}{checked}"
            asked.append(feature)
        return None

    def _of(self, deployment: LLMModelConfig) -> frozenset[Feature]:
        key = deployment.deployment_id
        if key not in self._caps:
            self._caps[key] = frozenset(self.capabilities(deployment))
        return self._caps[key]
