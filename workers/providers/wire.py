"""Building blocks for the small pydantic models each adapter parses its 2xx replies with.

Owns: `WireModel` (ignores unknown fields, as provider replies grow new ones) and the field
types shared by the reply models: `Meta` (a string we only display, e.g. an id or model name;
anything else is dropped rather than failing the call), `Tokens` / `Count` (a required /
optional token count). A field that cannot be read raises `pydantic.ValidationError`, a
`ValueError`, which the base class turns into `MalformedReply`. Must not: know any provider's
reply shape (each adapter module's job).

Token counts are read strictly (issue 20): a non-negative integer, or a float with an integral
value such as Cohere's `12.0`. Anything else a provider may send (`-1000000`, `1.5`, `"12"`,
`true`, `1e300`, NaN) becomes `UNTRUSTED`, a negative value so large that adding any real
count to it stays negative: the usage check (workers/usage_check.py) then sees a negative total
and prices the attempt at its reservation. Nothing downstream can overflow on it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

# Larger than any real count and exactly representable as a float; beyond it, untrusted.
MAX_COUNT = 2**53
UNTRUSTED = -(2**62)  # "the provider's count could not be trusted"; sums of counts stay < 0


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def strict_count(value: Any) -> int:
    """A token count as the provider sent it, or `UNTRUSTED` when it is not a plausible one."""
    if isinstance(value, bool):
        return UNTRUSTED
    if isinstance(value, int):
        return value if 0 <= value <= MAX_COUNT else UNTRUSTED
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if 0 <= value <= MAX_COUNT else UNTRUSTED
    return UNTRUSTED


def _count(value: Any) -> Any:
    return 0 if value is None or value == "" else strict_count(value)


def _tokens(value: Any) -> Any:
    return value if value is None else strict_count(value)  # None stays malformed


class WireModel(BaseModel):
    """A reply fragment: unknown fields ignored, never serialised back."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Meta = Annotated[str | None, BeforeValidator(_str_or_none)]
Count = Annotated[int, BeforeValidator(_count)]  # optional: missing, null or "" = 0
Tokens = Annotated[int, BeforeValidator(_tokens)]  # required: null is malformed

__all__ = ["MAX_COUNT", "UNTRUSTED", "Count", "Meta", "Tokens", "WireModel", "strict_count"]
