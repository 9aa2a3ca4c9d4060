"""Building blocks for the small pydantic models each adapter parses its 2xx replies with.

Owns: `WireModel` (ignores unknown fields, as provider replies grow new ones) and the lax field
types shared by the reply models: `Meta` (a string we only display, e.g. an id or model name;
anything else is dropped rather than failing the call), `Tokens` / `Count` (a required /
optional token count; a float such as Cohere's `12.0` is truncated as `int()` did). A field that
cannot be read raises `pydantic.ValidationError`, a `ValueError`, which the base class turns
into `MalformedReply`. Must not: know any provider's reply shape (each adapter module's job).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) else value


def _count(value: Any) -> Any:
    return 0 if value is None or value == "" else _whole(value)


class WireModel(BaseModel):
    """A reply fragment: unknown fields ignored, never serialised back."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Meta = Annotated[str | None, BeforeValidator(_str_or_none)]
Count = Annotated[int, BeforeValidator(_count)]  # optional: missing, null or "" = 0
Tokens = Annotated[int, BeforeValidator(_whole)]  # required: null is malformed

__all__ = ["Count", "Meta", "Tokens", "WireModel"]
