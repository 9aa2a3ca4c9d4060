"""Simulator configuration: per-provider behaviour (latency, failure rates, limits).

This module owns the pydantic (v2) models that describe how the simulated providers behave:

* ``ProviderBehaviour`` - latency, injected failure probabilities, Retry-After hint, ``down``
  switch, sliding-window ``rpm``/``tpm`` limits, ``max_concurrency`` (queue or reject) and the
  context window, plus small per-model overrides (``models``).
* ``ModelOverride`` - the subset of fields that can be overridden for one model name (exact name
  or an ``fnmatch`` pattern such as ``"gpt-4o*"``).
* ``SimConfig`` - the whole simulator: RNG ``seed``, log ring-buffer size, a ``default``
  behaviour and explicit per-provider behaviours. Loadable from a dict or a YAML/JSON file.

``ResolvedBehaviour`` is the flat, immutable result of applying a model override to a provider
behaviour; the request pipeline reads only that.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator


def known_providers() -> tuple[str, ...]:
    """The endpoint names the simulator serves (one per registered provider, plus variants)."""
    from simulator.providers import endpoints  # the dialects import aiohttp; load on use

    return tuple(endpoints())


Probability = float

# The hostile provider's reply classes (issue 20); simulator/hostile.py says what each sends.
HostileMode = Literal[
    "usage_absurd",
    "usage_negative",
    "usage_fraction",
    "usage_string",
    "usage_huge",
    "huge_body",
    "slow_drip",
    "html_error",
    "error_in_200",
    "echo_key",
    "echo_key_partial",
    "echo_headers_500",
    "key_in_request_id",
    "retry_after_unbounded",
    "invalid_utf8",
]

DEFAULT_CONTEXT_WINDOW = 128_000
TINY_CONTEXT_WINDOW = 1_000


class ModelOverride(BaseModel):
    """Per-model overrides; every field left ``None`` inherits the provider's value."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0)
    latency_jitter_ms: float | None = Field(default=None, ge=0)
    rate_429: Probability | None = Field(default=None, ge=0, le=1)
    rate_500: Probability | None = Field(default=None, ge=0, le=1)
    rate_503: Probability | None = Field(default=None, ge=0, le=1)
    rate_529: Probability | None = Field(default=None, ge=0, le=1)
    rate_timeout: Probability | None = Field(default=None, ge=0, le=1)
    rate_malformed: Probability | None = Field(default=None, ge=0, le=1)
    rate_invalid_json: Probability | None = Field(default=None, ge=0, le=1)
    rate_refusal: Probability | None = Field(default=None, ge=0, le=1)
    retry_after_s: float | None = Field(default=None, ge=0)
    timeout_hold_s: float | None = Field(default=None, ge=0)
    down: bool | None = None
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    hostile: HostileMode | None = None
    cached_share: Probability | None = Field(default=None, ge=0, le=1)
    cache_write_share: Probability | None = Field(default=None, ge=0, le=1)
    reasoning_share: Probability | None = Field(default=None, ge=0, le=1)


class ProviderBehaviour(BaseModel):
    """How one simulated provider behaves. All probabilities are in [0, 1].

        ``rpm``/``tpm`` are enforced with a sliding 60 s window (``None`` = unlimited; the
        rate-limit headers then advertise large defaults). ``max_concurrency`` bounds in-flight
        requests; ``concurrency_mode="queue"`` makes extra requests wait for a slot, ``"reject"``
        answers them 429. ``rate_invalid_json`` is the share of JSON-mode replies (and tool calls) made
    invalid, ``rate_refusal`` the share of replies that are refusals; both are drawn from a hash of
    the request body, the seed and how often that body was seen, so a run is reproducible and a
    retry draws afresh (``simulator.tooling`` says what "invalid" means). ``context_window=None`` means 128000, or 1000 for a model whose name
        contains ``tiny``. A ``models`` entry with its own ``rpm``/``tpm`` gets its own window.
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)
    rate_429: Probability = Field(default=0.0, ge=0, le=1)
    rate_500: Probability = Field(default=0.0, ge=0, le=1)
    rate_503: Probability = Field(default=0.0, ge=0, le=1)
    rate_529: Probability = Field(default=0.0, ge=0, le=1)
    rate_timeout: Probability = Field(default=0.0, ge=0, le=1)
    rate_malformed: Probability = Field(default=0.0, ge=0, le=1)
    rate_invalid_json: Probability = Field(default=0.0, ge=0, le=1)
    rate_refusal: Probability = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0)
    timeout_hold_s: float = Field(default=30.0, ge=0)
    down: bool = False
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    concurrency_mode: Literal["queue", "reject"] = "queue"
    context_window: int | None = Field(default=None, ge=1)
    # Issue 20: every reply that would succeed is replaced by this hostile reply class;
    # `huge_body` sends `hostile_body_bytes`, `slow_drip` takes `hostile_drip_s` seconds.
    hostile: HostileMode | None = None
    hostile_body_bytes: int = Field(default=400_000_000, ge=1)
    hostile_drip_s: float = Field(default=30.0, ge=0)
    # Issue 19: usage classes. Shares of the prompt reported as cache reads and cache writes
    # (reads first, writes take what is left), and reasoning tokens added to each reply as a
    # share of its visible tokens. A dialect reports the classes its provider has; the others
    # stay inside their totals (simulator/engine.py).
    cached_share: Probability = Field(default=0.0, ge=0, le=1)
    cache_write_share: Probability = Field(default=0.0, ge=0, le=1)
    reasoning_share: Probability = Field(default=0.0, ge=0, le=1)
    # Issue 18, the batch APIs: a batch ends `batch_delay_s` after it was created, as
    # `batch_outcome` says (expired: `batch_done_fraction` of its items ran first); each item
    # fails (500) with probability `batch_item_error_rate` (a seeded draw per item).
    batch_delay_s: float = Field(default=0.0, ge=0)
    batch_outcome: Literal["completed", "expired", "failed"] = "completed"
    batch_done_fraction: float = Field(default=0.0, ge=0, le=1)
    batch_item_error_rate: Probability = Field(default=0.0, ge=0, le=1)
    models: dict[str, ModelOverride] = Field(default_factory=dict)

    def override_for(self, model: str) -> ModelOverride | None:
        """The override for ``model``: an exact key first, then the first matching pattern."""
        if not self.models:
            return None
        exact = self.models.get(model)
        if exact is not None:
            return exact
        for pattern, override in self.models.items():
            if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(model, pattern):
                return override
        return None

    def resolve(self, model: str) -> ResolvedBehaviour:
        """Flatten this behaviour plus ``model``'s override into a ``ResolvedBehaviour``."""
        values = {name: getattr(self, name) for name in _RESOLVED_FIELDS}
        override = self.override_for(model)
        model_limited = False
        if override is not None:
            for name, value in override.model_dump(exclude_none=True).items():
                values[name] = value
            model_limited = override.rpm is not None or override.tpm is not None
        window = values.pop("context_window")
        if window is None:
            window = TINY_CONTEXT_WINDOW if "tiny" in model else DEFAULT_CONTEXT_WINDOW
        return ResolvedBehaviour(**values, context_window=window, model_limited=model_limited)


_RESOLVED_FIELDS: tuple[str, ...] = (
    "latency_ms",
    "latency_jitter_ms",
    "rate_429",
    "rate_500",
    "rate_503",
    "rate_529",
    "rate_timeout",
    "rate_malformed",
    "rate_invalid_json",
    "rate_refusal",
    "retry_after_s",
    "timeout_hold_s",
    "down",
    "rpm",
    "tpm",
    "context_window",
    "hostile",
    "hostile_body_bytes",
    "hostile_drip_s",
    "cached_share",
    "cache_write_share",
    "reasoning_share",
)


@dataclass(frozen=True, slots=True)
class ResolvedBehaviour:
    """Effective behaviour for one (provider, model); cached by the server state."""

    latency_ms: float
    latency_jitter_ms: float
    rate_429: float
    rate_500: float
    rate_503: float
    rate_529: float
    rate_timeout: float
    rate_malformed: float
    rate_invalid_json: float
    rate_refusal: float
    retry_after_s: float
    timeout_hold_s: float
    down: bool
    rpm: int | None
    tpm: int | None
    context_window: int
    hostile: str | None
    hostile_body_bytes: int
    hostile_drip_s: float
    cached_share: float
    cache_write_share: float
    reasoning_share: float
    model_limited: bool

    @property
    def any_failure(self) -> bool:
        """True if any injected-failure probability is non-zero."""
        total = self.rate_429 + self.rate_500 + self.rate_503 + self.rate_529
        return total + self.rate_timeout + self.rate_malformed > 0


class SimConfig(BaseModel):
    """The whole simulator configuration.

    ``providers`` holds explicit behaviours; a provider without an entry uses ``default``.
    ``seed`` seeds the single ``random.Random`` that decides injected failures and jitter, so a
    run with the same requests in the same order is reproducible. ``log_size`` bounds the
    request log ring buffer; ``body_log_size`` bounds how many of the latest requests keep their
    body as received (``GET /_sim/log?bodies=1``, ``GET /_sim/requests``).
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    log_size: int = Field(default=100_000, ge=1)
    body_log_size: int = Field(default=5_000, ge=0)
    default: ProviderBehaviour = Field(default_factory=ProviderBehaviour)
    providers: dict[str, ProviderBehaviour] = Field(default_factory=dict)
    # Issue 18: what a call is billed, per model name or fnmatch pattern (USD per 1M tokens:
    # [input, output]); a batch item at `batch_discount` of it. Unlisted models bill 0.
    prices: dict[str, tuple[Decimal, Decimal]] = Field(default_factory=dict)
    batch_discount: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)

    def price_of(self, model: str, batch: bool, usage: tuple[int, int]) -> Decimal:
        """USD billed for `usage` (prompt, completion tokens) of `model`."""
        found = self.prices.get(model) or next(
            (p for pat, p in self.prices.items() if fnmatch.fnmatchcase(model, pat)), None
        )
        if found is None:
            return Decimal(0)
        usd = (usage[0] * found[0] + usage[1] * found[1]) / Decimal(1_000_000)
        return usd * self.batch_discount if batch else usd

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: dict[str, ProviderBehaviour]) -> dict[str, ProviderBehaviour]:
        unknown = sorted(set(value) - set(known_providers()))
        if unknown:
            raise ValueError(f"unknown provider(s) {unknown}; known: {list(known_providers())}")
        return value

    def behaviour(self, provider: str) -> ProviderBehaviour:
        """The behaviour in force for ``provider``."""
        return self.providers.get(provider, self.default)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SimConfig:
        """Validate a plain dict (e.g. parsed YAML) into a ``SimConfig``."""
        return cls.model_validate(data or {})

    @classmethod
    def from_file(cls, path: str | Path) -> SimConfig:
        """Load a YAML (or JSON, which is YAML) file."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_dict(yaml.safe_load(text))

    def with_latency(self, latency_ms: float) -> SimConfig:
        """A copy where the default and every explicit provider use ``latency_ms``."""
        data = self.model_dump()
        data["default"]["latency_ms"] = latency_ms
        for behaviour in data["providers"].values():
            behaviour["latency_ms"] = latency_ms
        return SimConfig.model_validate(data)

    def updated(self, provider: str, fields: dict[str, Any]) -> SimConfig:
        """A copy with ``fields`` merged into ``provider``'s behaviour (partial update).

        ``models`` entries are merged per model name; a ``None`` value removes that override.
        Raises ``ValueError`` (pydantic ``ValidationError``) on bad names or values.
        """
        known = known_providers()
        if provider not in known:
            raise ValueError(f"unknown provider {provider!r}; known: {list(known)}")
        current = self.behaviour(provider).model_dump()
        fields = dict(fields)
        models_patch = fields.pop("models", None)
        current.update(fields)
        if models_patch is not None:
            models = dict(current["models"])
            for name, override in dict(models_patch).items():
                if override is None:
                    models.pop(name, None)
                else:
                    models[name] = override
            current["models"] = models
        data = self.model_dump()
        data["providers"][provider] = current
        return SimConfig.model_validate(data)
