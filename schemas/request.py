"""The OpenAI chat request surface, normalised: content parts, tools, tool calls, output formats,
and the features a request needs from a deployment.

Owns: the provider-neutral shape of everything a chat request can ask for beyond plain text
(issue 15), and `required_features`, the pure map from a request to the `Feature`s a deployment
must honour. Each adapter translates these to its wire format; routing skips deployments that
cannot honour a feature; nothing is dropped silently. Must not: do I/O or know any provider.

Tool-call arguments are kept as OpenAI keeps them: a JSON *string*. Adapters whose wire format
carries an object (Anthropic, Gemini, Ollama) parse or serialise at the edge, exactly once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # OpenAI's rule for schema and function names


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Frozen):
    type: Literal["text"] = "text"
    text: str


class ImageUrl(_Frozen):
    url: str  # https://... or data:image/<type>;base64,...
    detail: Literal["auto", "low", "high"] | None = None

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
    """A call the model asked for. `arguments` is JSON text (OpenAI's form), never an object."""

    id: str
    name: str
    arguments: str


class JsonSchemaFormat(_Frozen):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN)
    json_schema: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Frozen):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @property
    def wants_json(self) -> bool:
        return self.type != "text"

    @property
    def schema_(self) -> dict[str, Any] | None:
        return self.json_schema.json_schema if self.json_schema else None


class FunctionDef(_Frozen):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Frozen):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedToolChoice(_Frozen):
    """`{"type": "function", "function": {"name": ...}}` in OpenAI's form, kept as the name."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class Feature(StrEnum):
    """What a request may need from a deployment beyond plain text chat."""

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


class Sampling(_Frozen):
    """Sampling parameters beyond temperature and max_tokens; None = not asked for."""

    stop: tuple[str, ...] | None = None
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = Field(default=None, max_length=256)


class Features(_Frozen):
    """Everything of a request that is not its messages: the part adapters translate."""

    response_format: ResponseFormat | None = None
    tools: tuple[ToolSpec, ...] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    sampling: Sampling = Sampling()

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.wants_json


def _serial_tool_calls(features: Features) -> bool | None:
    """True when tools are offered with `parallel_tool_calls: false`, else None."""
    return True if features.tools and features.parallel_tool_calls is False else None


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
