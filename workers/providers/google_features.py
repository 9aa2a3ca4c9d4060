"""The Gemini form of the request surface (issue 15): contents with inline images, function
calls and responses, JSON output, function declarations, function-calling config and sampling.

Owns, for the Gemini adapter:
- turns as `contents` (roles user/model); consecutive tool results joined in one user turn, so
  the results of parallel calls travel together;
- images as `inlineData`, from data: URLs only (https image URLs are not a capability:
  `fileData` wants a Files API uri, and an arbitrary https uri is unreliable);
- assistant calls as `functionCall` parts, args as objects. Gemini 3 wants a thought signature
  on the first call of a turn; history from elsewhere has none, so the documented
  `skip_thought_signature_validator` stands in;
- tool results as `functionResponse` parts in user turns, named after the call they answer,
  the response always an object;
- JSON output as `responseMimeType` + `responseJsonSchema`, tools as `parametersJsonSchema`:
  the JSON Schema fields, which take `additionalProperties`. Keywords outside their documented
  subset are cut and `strict` is not sent (the pipeline validates the reply against the full
  schema);
- `toolConfig.functionCallingConfig` (named = ANY + one allowed name); `stopSequences` (<= 5),
  `topP`, `seed` (int32), penalties. `user` has no Gemini field and is not sent: it labels the
  caller and does not shape the output.
Must not: do I/O. References: https://ai.google.dev/api/generate-content,
/gemini-api/docs/function-calling, /gemini-api/docs/thought-signatures; request-fidelity.md
§1-4, traps 2, 3, 6.
"""

from __future__ import annotations

from typing import Any

from schemas.job import ChatMessage
from schemas.request import Features, NamedToolChoice, TextPart
from workers.providers.features import (
    Unsendable,
    args_object,
    keep_keywords,
    name_for,
    result_object,
    tool_names,
)

ROLES = {"user": "user", "assistant": "model", "tool": "user"}
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
MAX_STOP = 5
SKIP_SIGNATURE = "skip_thought_signature_validator"
JSON_MIME = "application/json"
# What `responseJsonSchema` / `parametersJsonSchema` accept (request-fidelity.md §1).
SCHEMA_KEYWORDS = frozenset(
    "$id $defs $ref $anchor type format title description enum items prefixItems minItems "
    "maxItems minimum maximum anyOf oneOf properties additionalProperties required "
    "propertyOrdering".split()  # noqa: SIM905
)
MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def is_gemini_3(model_id: str) -> bool:
    return model_id.removeprefix("models/").startswith("gemini-3")


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return keep_keywords(schema, SCHEMA_KEYWORDS)


def parts(m: ChatMessage, names: dict[str, str], signed: bool) -> list[dict[str, Any]]:
    """One turn as Gemini parts."""
    if m.role == "tool":
        response = {"name": name_for(names, m), "response": result_object(m.text)}
        return [{"functionResponse": response}]
    out: list[dict[str, Any]] = []
    for part in m.content if isinstance(m.content, tuple) else ():
        if isinstance(part, TextPart):
            out.append({"text": part.text})
        elif not part.image_url.is_data:
            raise Unsendable("an image by URL (Gemini takes inline image data)")
        else:
            mime, data = part.image_url.data_parts()
            if mime not in IMAGE_TYPES:
                raise Unsendable(f"image type {mime} (Gemini takes png, jpeg, webp, heic, heif)")
            out.append({"inlineData": {"mimeType": mime, "data": data}})
    if isinstance(m.content, str) and (m.content or not m.tool_calls):
        out.append({"text": m.content})
    for i, call in enumerate(m.tool_calls or ()):
        part = {"functionCall": {"name": call.name, "args": args_object(call)}}
        if signed and i == 0:
            part["thoughtSignature"] = SKIP_SIGNATURE
        out.append(part)
    return out


def contents(messages: list[ChatMessage], model_id: str) -> list[dict[str, Any]]:
    names = tool_names(messages)
    signed = is_gemini_3(model_id)
    out: list[dict[str, Any]] = []
    previous: ChatMessage | None = None
    for m in messages:
        these = parts(m, names, signed)
        if previous is not None and previous.role == m.role == "tool":
            out[-1]["parts"].extend(these)  # the results of parallel calls: one turn
        else:
            out.append({"role": ROLES[m.role], "parts": these})
        previous = m
    return out


def tool_fields(features: Features) -> dict[str, Any]:
    """`tools` (function declarations) and `toolConfig`."""
    if not features.tools:
        return {}
    if features.parallel_tool_calls is False:
        raise Unsendable("Gemini cannot be told to make one call at a time")
    declarations = []
    for tool in features.tools:
        fn = tool.function
        decl: dict[str, Any] = {"name": fn.name}
        if fn.description:
            decl["description"] = fn.description
        if fn.parameters is not None:
            decl["parametersJsonSchema"] = json_schema(fn.parameters)
        declarations.append(decl)
    out: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = features.tool_choice
    if isinstance(choice, NamedToolChoice):
        config = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
        out["toolConfig"] = {"functionCallingConfig": config}
    elif choice is not None:
        out["toolConfig"] = {"functionCallingConfig": {"mode": MODES[choice]}}
    return out


def generation_fields(features: Features, config: dict[str, Any]) -> None:
    """JSON output and sampling into `generationConfig`."""
    fmt = features.response_format
    if fmt is not None and fmt.wants_json:
        config["responseMimeType"] = JSON_MIME
        if fmt.schema_ is not None:
            config["responseJsonSchema"] = json_schema(fmt.schema_)
    s = features.sampling
    if s.stop:
        if len(s.stop) > MAX_STOP:
            raise Unsendable(f"{len(s.stop)} stop sequences (Gemini takes {MAX_STOP})")
        config["stopSequences"] = list(s.stop)
    if s.seed is not None and not -(2**31) <= s.seed < 2**31:
        raise Unsendable("seed beyond 32 bits (Gemini's seed is an int32)")
    for key, value in (
        ("topP", s.top_p),
        ("seed", s.seed),
        ("presencePenalty", s.presence_penalty),
        ("frequencyPenalty", s.frequency_penalty),
    ):
        if value is not None:
            config[key] = value
