"""Gemini generateContent request features: parts, function calling, structured output.

This module owns the checks the Gemini API makes on what llmq translates (per
shared/reference/request-fidelity.md) and their translation into ``tooling.Features``.
Field names are accepted in camelCase or snake_case, as proto JSON allows. Rejections
(400 ``INVALID_ARGUMENT``):

* an unknown field at the top level or in ``generationConfig``: ``Invalid JSON payload
  received. Unknown name "x" at 'generation_config': Cannot find field.``;
* ``responseSchema`` / function ``parameters`` (the OpenAPI ``Schema`` subset) with a key
  outside that subset (``additionalProperties``, ``$schema``, ``$ref``, ...): ``Unknown name
  "additionalProperties" at 'generation_config.response_schema.properties[0].value'``; a
  ``type`` that is a list or not a Schema type: ``Invalid value at '...type'``;
* ``responseSchema`` together with ``responseJsonSchema`` (and ``parameters`` with
  ``parametersJsonSchema``); a schema without ``responseMimeType: application/json``;
* more than 5 ``stopSequences``; ``allowedFunctionNames`` unless the mode is ANY/VALIDATED;
  ``functionResponse`` without ``name``; ``inlineData`` without valid base64 ``data``;
* on ``gemini-3*`` models, a current-turn ``functionCall`` without its ``thoughtSignature``
  (the dummies ``skip_thought_signature_validator`` / ``context_engineering_is_the_way_to_go``
  pass, as Google documents); replies to those models sign their first function call.

``responseJsonSchema`` and ``parametersJsonSchema`` take full JSON Schema (with
``additionalProperties``); the simulator does not police their smaller subset.
"""

from __future__ import annotations

import re
from typing import Any

from simulator.providers.base import invalid
from simulator.providers.oai_shape import check_base64
from simulator.tooling import Features, Tool

TOP = frozenset(
    {
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
        "labels",
        "model",
    }
)
CONFIG = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "_responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "mediaResolution",
        "imageConfig",
        "audioTimestamp",
    }
)
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
JSON_MIME = ("application/json", "text/x.enum")


def camel(name: str) -> str:
    """``response_json_schema`` -> ``responseJsonSchema`` (leading ``_`` kept)."""
    lead = "_" if name.startswith("_") else ""
    return lead + re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name.lstrip("_"))


def snake(name: str) -> str:
    """``responseSchema`` -> ``response_schema`` (for error paths)."""
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def norm(obj: Any) -> dict[str, Any]:
    """A dict with camelCase keys (one level)."""
    return {camel(k): v for k, v in obj.items()} if isinstance(obj, dict) else {}


def unknown(name: str, where: str | None) -> Exception:
    """Gemini's 400 for a field it does not know."""
    at = f" at '{where}'" if where else ""
    return invalid(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def check_top_level(body: dict[str, Any]) -> None:
    """Unknown top-level fields -> 400."""
    for name in body:
        if camel(name) not in TOP:
            raise unknown(name, None)


def check_schema(schema: Any, where: str) -> None:
    """Police the OpenAPI ``Schema`` subset (responseSchema, function ``parameters``)."""
    if not isinstance(schema, dict):
        raise invalid(f"Invalid value at '{where}': expected a Schema object")
    for key, value in schema.items():
        if camel(key) not in SCHEMA_KEYS:
            raise unknown(key, where)
        key = camel(key)
        if key == "type" and (not isinstance(value, str) or value.upper() not in TYPES):
            raise invalid(
                f"Invalid value at '{where}.type' "
                f"(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), {value!r}"
            )
        if key == "properties" and isinstance(value, dict):
            for i, sub in enumerate(value.values()):
                check_schema(sub, f"{where}.properties[{i}].value")
        elif key == "items":
            check_schema(value, f"{where}.items")
        elif key == "anyOf" and isinstance(value, list):
            for i, sub in enumerate(value):
                check_schema(sub, f"{where}.any_of[{i}]")


def parse_config(config: dict[str, Any], features: Features) -> None:
    """``generationConfig``: structured output and stop sequences."""
    for name in config:
        if camel(name) not in CONFIG:
            raise unknown(name, "generation_config")
    conf = norm(config)
    schema = conf.get("responseSchema")
    json_schema = conf.get("responseJsonSchema", conf.get("_responseJsonSchema"))
    if schema is not None and json_schema is not None:
        raise invalid(
            "response_schema and response_json_schema cannot both be set; use one of them."
        )
    mime = conf.get("responseMimeType")
    if (schema is not None or json_schema is not None) and mime not in JSON_MIME:
        raise invalid(
            "response_mime_type must be one of ['application/json', 'text/x.enum'] when "
            "response_schema or response_json_schema is set."
        )
    if schema is not None:
        check_schema(schema, "generation_config.response_schema")
    if json_schema is not None and not isinstance(json_schema, dict):
        raise invalid("Invalid value at 'generation_config.response_json_schema'")
    if mime in JSON_MIME:
        features.json, features.schema = True, schema or json_schema
        features.enum_text = mime == "text/x.enum"
    stops = conf.get("stopSequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("Invalid value at 'generation_config.stop_sequences'")
        if len(stops) > 5:
            raise invalid(
                "* GenerateContentRequest.generation_config.stop_sequences: "
                "at most 5 stop sequences may be provided"
            )
        features.stop = list(stops)
    seed = conf.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise invalid(f"Invalid value at 'generation_config.seed' (TYPE_INT32), {seed!r}")
    features.seed = seed


def parse_tools(body: dict[str, Any], features: Features) -> None:
    """``tools[].functionDeclarations`` and ``toolConfig.functionCallingConfig``."""
    tools = body.get("tools")
    for i, tool in enumerate(tools or []):
        decls = norm(tool).get("functionDeclarations") or []
        for j, decl in enumerate(decls):
            decl = norm(decl)
            where = f"tools[{i}].function_declarations[{j}]"
            if not isinstance(decl.get("name"), str):
                raise invalid(f"* GenerateContentRequest.{where}.name: Name cannot be empty.")
            params, json_params = decl.get("parameters"), decl.get("parametersJsonSchema")
            if params is not None and json_params is not None:
                raise invalid(f"{where}: parameters and parameters_json_schema are exclusive")
            if params is not None:
                check_schema(params, f"{where}.parameters")
            features.tools.append(Tool(decl["name"], params or json_params))
    config = norm(norm(body.get("toolConfig")).get("functionCallingConfig"))
    mode = str(config.get("mode", "AUTO")).upper()
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise invalid(f"Invalid value at 'tool_config.function_calling_config.mode', {mode!r}")
    allowed = config.get("allowedFunctionNames")
    if allowed and mode not in ("ANY", "VALIDATED"):
        raise invalid(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names"
            ": only allowed when function calling mode is ANY"
        )
    features.choice = {"ANY": "required", "NONE": "none"}.get(mode, "auto")
    features.allowed = list(allowed) if allowed else None


SIGNATURE_MODELS = ("gemini-3",)
DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")


def needs_signatures(model: str) -> bool:
    """Gemini 3+ signs function calls and wants the signature back."""
    return model.startswith(SIGNATURE_MODELS)


def check_signatures(contents: list[Any], model: str) -> None:
    """Gemini 3+: in the current turn (after the last user text), the first ``functionCall``
    part of each model step must carry its ``thoughtSignature`` (or a documented dummy)."""
    if not needs_signatures(model):
        return
    start = 0
    for i, content in enumerate(contents):
        parts = content.get("parts") or [] if isinstance(content, dict) else []
        if content.get("role", "user") == "user" and any("text" in p for p in parts):
            start = i + 1
    for i in range(start, len(contents)):
        parts = [norm(p) for p in contents[i].get("parts") or []]
        calls = [p for p in parts if "functionCall" in p]
        if calls and not calls[0].get("thoughtSignature"):
            name = norm(calls[0]["functionCall"]).get("name")
            raise invalid(
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                f"to degraded model performance. Additional data, function call `{name}` , "
                f"position {i + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )


def walk_parts(parts: Any, where: str, role: str, features: Features) -> tuple[str, bool]:
    """(text for tokens, has a functionResponse) of one Content's parts."""
    if not isinstance(parts, list) or not parts:
        raise invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    texts: list[str] = []
    answered = False
    for k, part in enumerate(parts):
        part = norm(part) if isinstance(part, dict) else None
        if part is None:
            raise invalid(f"Invalid JSON payload received. Unknown name in {where}.parts")
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif "inlineData" in part:
            data = norm(part["inlineData"])
            try:
                check_base64(data.get("data"), "inline_data")
            except Exception:
                raise invalid(
                    f"Invalid value at '{where}.parts[{k}].inline_data.data' (TYPE_BYTES), "
                    "Base64 decoding failed"
                ) from None
            features.add_image(data["data"])
        elif "fileData" in part:
            features.add_image(str(norm(part["fileData"]).get("fileUri", "")))
        elif "functionCall" in part:
            call = norm(part["functionCall"])
            features.history_calls += 1
            texts.append(str(call.get("name", "")) + str(call.get("args", "")))
        elif "functionResponse" in part:
            reply = norm(part["functionResponse"])
            if not reply.get("name"):
                raise invalid(
                    f"* GenerateContentRequest.{where}.parts[{k}].function_response.name: "
                    "Name cannot be empty."
                )
            answered = True
            features.tool_results += 1
            texts.append(str(reply.get("response", "")))
    return "".join(texts), answered
