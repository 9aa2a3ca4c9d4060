"""The OpenAI chat request surface, normalised: content parts, tools, tool calls, output formats,
and the features a request needs from a deployment.

Owns: the provider-neutral shape of everything a chat request can ask for beyond plain text
(issue 15), its structural invariants (a named tool choice names a declared tool, at most four
stop strings, ...), its OpenAI form (`Features.openai_params`, `ToolCall.openai`), and
`required_features`, the pure map from a request to the `Feature`s a deployment must honour.
Each adapter translates these to its wire format; routing skips deployments that cannot honour
a feature; nothing is dropped silently. Must not: do I/O or know any provider. The checks that
need a library or the wire text (JSON Schema validity, image payloads, tool-call ids answered
in order, error texts with line numbers) live in `core.jsonl_*`, which every spec passes through.

Tool-call arguments are kept as OpenAI keeps them: a JSON *string*. Adapters whose wire format
carries an object (Anthropic, Gemini, Ollama) parse or serialise at the edge, exactly once.

Dumps are compact: a field that is None is left out (`exclude_if`), so a stored spec or a cache
key holds only what the request asked for, and explicit null equals absent.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for schema and function names
MAX_TOOLS = 128  # OpenAI's limit on `tools`
MAX_STOP = 4  # OpenAI's limit on `stop`
INT64 = 2**63


def _is_none(value: Any) -> bool:
    return value is None


def _opt(**kw: Any) -> Any:
    """An optional field (default None) that a dump leaves out while it is None."""
    return Field(default=None, exclude_if=_is_none, **kw)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Frozen):
    type: Literal["text"] = "text"
    text: str


class ImageUrl(_Frozen):
    """An image by https URL or inline ``data:image/<png|jpeg|gif|webp>;base64,...`` (the
    input parser checks the payload is base64 of an image of that type)."""

    url: str = Field(pattern=r"^(https://|data:image/)")
    detail: Literal["auto", "low", "high"] | None = _opt()

    @property
    def is_data(self) -> bool:
        return self.url.startswith("data:")

    def data_parts(self) -> tuple[str, str]:
        """(media type, base64 payload) of a data: URL. Validated at input, so well formed."""
        head, _, payload = self.url.partition(",")
        return head.removeprefix("data:").split(";", 1)[0], payload


class ImagePart(_Frozen):
    type: Literal["image_url"] = "image_url"
    image_url: ImageUrl


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ToolCall(_Frozen):
    """A call the model asked for. `arguments` is JSON text (OpenAI's form), never an object.

    Also built from OpenAI's nested form ``{"id", "type": "function", "function": {"name",
    "arguments"}}``; dumped flat, `openai()` gives the nested form back.
    """

    id: str = Field(min_length=1)
    name: str = Field(pattern=NAME_PATTERN)
    arguments: str

    @model_validator(mode="before")
    @classmethod
    def _from_openai(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "function" in data
            and data.keys() <= {"id", "type", "function"}
        ):
            fn = data["function"]
            if data.get("type", "function") == "function" and isinstance(fn, dict):
                if fn.keys() <= {"name", "arguments"}:
                    return {"id": data.get("id"), **fn}
        return data

    def openai(self) -> dict[str, Any]:
        fn = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": fn}


class JsonSchemaFormat(_Frozen):
    """`response_format.json_schema`; the schema is `json_schema` in Python, ``schema`` on the
    wire and in dumps."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    name: str = Field(pattern=NAME_PATTERN)
    json_schema: dict[str, Any] = Field(alias="schema")
    description: str | None = _opt()
    strict: bool | None = _opt()


class ResponseFormat(_Frozen):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = _opt()

    @model_validator(mode="after")
    def _schema_iff_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is required for type json_schema, and only there")
        return self

    @property
    def wants_json(self) -> bool:
        return self.type != "text"

    @property
    def schema_(self) -> dict[str, Any] | None:
        return self.json_schema.json_schema if self.json_schema else None


class FunctionDef(_Frozen):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = _opt()
    parameters: dict[str, Any] | None = _opt()  # a JSON Schema of type object
    strict: bool | None = _opt()


class ToolSpec(_Frozen):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedToolChoice(_Frozen):
    """`{"type": "function", "function": {"name": ...}}` in OpenAI's form, kept as the name.
    Built from either form; `openai()` gives OpenAI's back."""

    name: str

    @model_validator(mode="before")
    @classmethod
    def _from_openai(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.keys() == {"type", "function"}:
            fn = data["function"]
            if data["type"] == "function" and isinstance(fn, dict) and fn.keys() == {"name"}:
                return fn
        return data

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name}}


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class Feature(StrEnum):
    """What a request may need from a deployment beyond plain text chat.

    Declaration order is the order in which a missing feature is named (submit's
    ``no deployment of MODEL supports FEATURE``): keep it stable.
    """

    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"
    TOOLS = "tools"
    TOOL_CHOICE_REQUIRED = "tool_choice_required"
    TOOL_CHOICE_NAMED = "tool_choice_named"
    TOOL_CHOICE_NONE = "tool_choice_none"
    JSON_WITH_TOOLS = "json_with_tools"  # response_format and tools in one request
    VISION = "vision"
    IMAGE_URL = "image_url"  # an image given by https URL (not inline data)
    STOP = "stop"
    TOP_P = "top_p"
    SEED = "seed"
    PENALTIES = "penalties"
    SERIAL_TOOL_CALLS = "serial_tool_calls"  # parallel_tool_calls: false
    BLANK_STOP = "blank_stop"  # a stop string of whitespace only (some APIs reject it)


StopString = Annotated[str, Field(min_length=1)]


class Sampling(_Frozen):
    """Sampling parameters beyond temperature and max_tokens; None = not asked for.
    `stop` may be given as one string; it is kept as a tuple of 1 to 4 non-empty strings."""

    stop: tuple[StopString, ...] | None = _opt(min_length=1, max_length=MAX_STOP)
    top_p: float | None = _opt(ge=0, le=1)
    seed: int | None = _opt(ge=-INT64, lt=INT64)
    presence_penalty: float | None = _opt(ge=-2, le=2)
    frequency_penalty: float | None = _opt(ge=-2, le=2)
    user: str | None = _opt(max_length=256)

    @model_validator(mode="before")
    @classmethod
    def _one_stop_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stop"), str):
            return {**data, "stop": (data["stop"],)}
        return data

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in type(self).model_fields)


def _empty_sampling(value: Sampling) -> bool:
    return value.is_empty


class Features(_Frozen):
    """Everything of a request that is not its messages: the part adapters translate.

    Invariants: `tool_choice` and `parallel_tool_calls` only with `tools`; a named choice
    names a declared tool; tool names are unique.
    """

    response_format: ResponseFormat | None = _opt()
    tools: tuple[ToolSpec, ...] | None = _opt(min_length=1, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = _opt()
    parallel_tool_calls: bool | None = _opt()
    sampling: Sampling = Field(default=Sampling(), exclude_if=_empty_sampling)

    @model_validator(mode="after")
    def _consistent(self) -> Features:
        names = [t.function.name for t in self.tools or ()]
        if len(set(names)) != len(names):
            raise ValueError("tools: function names must be unique")
        if not names and self.tool_choice is not None:
            raise ValueError("tool_choice is given without tools")
        if not names and self.parallel_tool_calls is not None:
            raise ValueError("parallel_tool_calls is given without tools")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.name not in names:
            raise ValueError(f"tool_choice names {choice.name!r}, which is not in tools")
        return self

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.wants_json

    @property
    def is_empty(self) -> bool:
        """True when the request asks for nothing beyond plain text chat."""
        return self is NO_FEATURES or self == NO_FEATURES

    def openai_params(self) -> dict[str, Any]:
        """The features as OpenAI Chat Completions body parameters (only those asked for)."""
        out: dict[str, Any] = {}
        if self.response_format is not None:
            out["response_format"] = self.response_format.model_dump(mode="json")
        if self.tools:
            out["tools"] = [t.model_dump(mode="json") for t in self.tools]
        choice = self.tool_choice
        if choice is not None:
            out["tool_choice"] = choice.openai() if isinstance(choice, NamedToolChoice) else choice
        if self.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = self.parallel_tool_calls
        out.update(self.sampling.model_dump(mode="json"))
        return out


NO_FEATURES = Features()


def _serial_tool_calls(features: Features) -> bool | None:
    """True when tools are offered with `parallel_tool_calls: false`, else None."""
    return True if features.tools and features.parallel_tool_calls is False else None


def _blank_stop(sampling: Sampling) -> bool | None:
    return True if sampling.stop and any(not stop.strip() for stop in sampling.stop) else None


def required_features(features: Features, messages: Any) -> frozenset[Feature]:
    """The features a deployment must honour to serve this request. Pure.

    `messages` is any iterable of `schemas.job.ChatMessage`.
    """
    need: set[Feature] = set()
    fmt = features.response_format
    if fmt is not None and fmt.type != "text":
        need.add(Feature.JSON_SCHEMA if fmt.type == "json_schema" else Feature.JSON_OBJECT)
    if features.tools or any(m.tool_calls or m.role == "tool" for m in messages):
        need.add(Feature.TOOLS)
    if features.tools and fmt is not None and fmt.type != "text":
        need.add(Feature.JSON_WITH_TOOLS)
    choice = features.tool_choice
    if isinstance(choice, NamedToolChoice):
        need.add(Feature.TOOL_CHOICE_NAMED)
    elif choice == "required":
        need.add(Feature.TOOL_CHOICE_REQUIRED)
    elif choice == "none":
        need.add(Feature.TOOL_CHOICE_NONE)
    for message in messages:
        for image in message.images:
            need.add(Feature.VISION)
            if not image.is_data:
                need.add(Feature.IMAGE_URL)
    s = features.sampling
    for feature, value in (
        (Feature.SERIAL_TOOL_CALLS, _serial_tool_calls(features)),
        (Feature.STOP, s.stop),
        (Feature.BLANK_STOP, _blank_stop(s)),
        (Feature.TOP_P, s.top_p),
        (Feature.SEED, s.seed),
        (
            Feature.PENALTIES,
            s.presence_penalty if s.presence_penalty is not None else s.frequency_penalty,
        ),
    ):
        if value is not None:
            need.add(feature)
    return frozenset(need)


def in_order(features: frozenset[Feature]) -> list[Feature]:
    """`features` in `Feature` declaration order (the stable order for messages)."""
    return [f for f in Feature if f in features]
