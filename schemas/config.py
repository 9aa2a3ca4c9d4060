"""The shape of `llm_config.yaml`: providers, models (deployments), routing and feature settings.

Owns: pydantic v2 models and their validation rules. Provider fields take any well-formed
name; which names (and dialects) exist is checked against the validation context the workers'
loader passes from `REGISTRY` (`workers/providers/config.py`). Must not: read files or the
environment, import anything from `workers/` or `producer/` (YAML loading lives in
`core/config_file.py`), or list providers beyond the seed's `LLMProvider` enum. API keys are
`SecretStr` and are never serialised in clear.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from schemas.embedding import ModelMode
from schemas.hosts import RESOLVE_CONTEXT, check_base_url
from schemas.request import Feature


class LLMProvider(StrEnum):
    """The six providers llmq ships with, as the seed API names them (`LLMProvider.OPENAI`).

    Not the list of what exists: that is `workers.providers.REGISTRY`. A config may name any
    registered provider; these six come back as members of this enum, any other as a
    `ProviderName`. Both are `str` and have `.value`.
    """

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    HUGGINGFACE = "huggingface"
    COHERE = "cohere"
    GOOGLE = "google"
    LOCAL = "local"

    @classmethod
    def seed_default(cls) -> LLMProvider:
        """`default_provider` when a config names none (as in the seed)."""
        return cls.OPENAI


class ProviderName(str):
    """A registered provider's name that is not one of `LLMProvider`'s members."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str.__str__(self)


# Validation context keys (see `workers.providers.config`): the registered provider names and
# the wire dialects their adapters speak. Without them any well-formed name passes.
PROVIDERS_CONTEXT = "providers"
DIALECTS_CONTEXT = "dialects"
NAME_PATTERN = r"^[a-z][a-z0-9_-]*$"


def provider_name(value: str, info: ValidationInfo) -> LLMProvider | ProviderName:
    """`value` as a provider name. When validated with a context holding the registered names
    (`{"providers": [...]}`, see `workers.providers.config`), an unregistered one is an error;
    without it (the producer, which never calls a provider) any well-formed name passes."""
    known = (info.context or {}).get(PROVIDERS_CONTEXT)
    if known is not None and value not in known:
        expected = ", ".join(repr(str(n)) for n in known)
        raise ValueError(f"unknown provider {value!r}; expected one of {expected}")
    try:
        return LLMProvider(value)
    except ValueError:
        return ProviderName(value)


# A provider field: lower-case letters, digits, `_` and `-`, checked against the registry when
# the loader passes it (the schema itself must not import provider code).
Provider = Annotated[
    str,
    StringConstraints(pattern=NAME_PATTERN),
    AfterValidator(provider_name),
]


def secret_text_problem(value: str) -> str | None:
    """Why `value` cannot be sent as a key or header value, or None when it can.

    A newline or other control character would make the HTTP layer fail with the whole value
    in its message; it is refused when the config is loaded instead.
    """
    for ch in value:
        if ch in "\r\n":
            return "contains a newline"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return f"contains a control character (U+{ord(ch):04X})"
    return None


def _check_secret(value: SecretStr | None) -> SecretStr | None:
    problem = secret_text_problem(value.get_secret_value()) if value is not None else None
    if problem:
        raise ValueError(problem)  # pydantic names the field; the value is never shown
    return value


CheckedSecret = Annotated[SecretStr, AfterValidator(_check_secret)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=False)


class ProviderSettings(_Strict):
    """Per-provider connection settings (`providers.<name>` in the yaml)."""

    api_base: str | None = None
    organization: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # An adapter's alternative wire format (local: `ollama` uses /api/chat); None = its own.
    dialect: str | None = Field(default=None, pattern=NAME_PATTERN)
    allow_insecure_http: bool = False
    api_key: CheckedSecret | None = None  # normally from the environment, see config_file
    # Several keys used round-robin (a key answering 401/403 leaves the pool); `api_key`,
    # when set too, is the first of them.
    api_keys: list[CheckedSecret] = Field(default_factory=list)
    # A file holding one more key (a Docker/Kubernetes secret), re-read when it changes.
    api_key_file: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)  # read timeout for one call, seconds
    # Bounds on what a reply may make us do (issue 20): a longer body fails `reply_too_large`
    # after reading at most this many bytes; a longer Retry-After is cut to this many seconds.
    max_reply_bytes: int = Field(default=10_000_000, ge=1024)
    max_retry_after_s: float = Field(default=3600.0, gt=0)

    @field_validator("dialect")
    @classmethod
    def _known_dialect(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = (info.context or {}).get(DIALECTS_CONTEXT)
        if value is not None and known is not None and value not in known:
            expected = ", ".join(repr(n) for n in known)
            raise ValueError(f"unknown dialect {value!r}; expected one of {expected}")
        return value

    @field_validator("headers")
    @classmethod
    def _clean_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            problem = secret_text_problem(name) or secret_text_problem(text)
            if problem:
                raise ValueError(f"header {name.strip()!r}: {problem}")
        return value

    @model_validator(mode="after")
    def _check_base(self, info: ValidationInfo) -> ProviderSettings:
        if self.api_base:
            resolve = (info.context or {}).get(RESOLVE_CONTEXT)
            self.api_base = check_base_url(self.api_base, self.allow_insecure_http, resolve)
        return self

    @field_serializer("api_key")
    def _hide_key(self, v: SecretStr | None) -> str | None:
        return "**********" if v else None

    @field_serializer("api_keys")
    def _hide_keys(self, v: list[SecretStr]) -> list[str]:
        return ["**********" for _ in v]


class LLMModelConfig(_Strict):
    """One deployment: a model `name` served by one provider. Names may repeat across providers."""

    name: str = Field(min_length=1)
    provider: Provider
    model_id: str | None = None  # the provider's own id; defaults to name
    api_url: str | None = None  # replaces the provider's api_base for this deployment
    api_key: CheckedSecret | None = None
    api_keys: list[CheckedSecret] = Field(default_factory=list)  # round-robin, as for providers
    max_tokens: int = Field(default=1024, gt=0)
    temperature: float = Field(default=0.7, ge=0, le=2)
    is_default: bool = False
    input_cost_per_mtok: Decimal | None = Field(default=None, ge=0)  # USD per 1M input tokens
    output_cost_per_mtok: Decimal | None = Field(default=None, ge=0)  # USD per 1M output tokens
    # cache reads and writes (issue 19); unset = billed at input_cost_per_mtok
    cached_input_cost_per_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_cost_per_mtok: Decimal | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)  # tokens
    rpm: int | None = Field(default=None, gt=0)  # requests per minute
    tpm: int | None = Field(default=None, gt=0)  # tokens per minute
    priority: int = 0  # lower goes first under `routing: priority`
    weight: float = Field(default=1.0, gt=0)  # share under `routing: weighted`
    id: str | None = None  # deployment id; defaults to "<provider>/<model_id>"
    # Changes to the adapter's built-in capabilities: true adds a feature, false removes it
    # (`workers.providers.capabilities_of` resolves them).
    capabilities: dict[Feature, bool] | None = None
    # Issue 17: `embedding` models answer embedding lines only, `chat` models chat lines only.
    mode: ModelMode = "chat"
    dimensions: int | None = Field(default=None, gt=0, le=65_536)  # vector length returned
    input_type: str | None = Field(default=None, min_length=1)  # provider's input/task type

    @model_validator(mode="after")
    def _defaults(self, info: ValidationInfo) -> LLMModelConfig:
        if self.mode == "chat" and (self.dimensions is not None or self.input_type is not None):
            raise ValueError("dimensions and input_type are for `mode: embedding` models")
        if not self.model_id:
            self.model_id = self.name
        if self.api_url:
            resolve = (info.context or {}).get(RESOLVE_CONTEXT)
            self.api_url = check_base_url(self.api_url, False, resolve)
        return self

    @property
    def deployment_id(self) -> str:
        return self.id or f"{self.provider.value}/{self.model_id}"

    @field_serializer("api_key")
    def _hide_key(self, v: SecretStr | None) -> str | None:
        return "**********" if v else None

    @field_serializer("api_keys")
    def _hide_keys(self, v: list[SecretStr]) -> list[str]:
        return ["**********" for _ in v]


def _check_shared_names(models: list[LLMModelConfig]) -> None:
    """Deployments sharing a name are one model: the same mode and, for embeddings, the
    same vector length (a fallback across vector spaces is refused at routing too)."""
    first: dict[str, tuple[int, LLMModelConfig]] = {}
    for i, m in enumerate(models):
        j, other = first.setdefault(m.name, (i, m))
        if m.mode != other.mode:
            raise ValueError(f"models[{i}]: mode {m.mode!r} differs from models[{j}] ({m.name!r})")
        if m.dimensions != other.dimensions:
            raise ValueError(
                f"models[{i}]: dimensions {m.dimensions} differ from models[{j}]'s "
                f"{other.dimensions} for {m.name!r}: deployments sharing a name must return "
                "vectors of one length"
            )


class RoutingSettings(_Strict):
    """How the router orders deployments and how hard it retries."""

    strategy: Literal["cost", "priority", "latency", "weighted"] = "cost"
    max_attempts: int = Field(default=6, ge=1, le=50)  # retries and fallbacks together, per job
    backoff_base_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_countdown_s: float = Field(default=300.0, gt=0)  # longer waits go to not_before only
    default_cooldown_s: float = Field(default=5.0, ge=0)  # after 429/503/529 without Retry-After
    circuit_failures: int = Field(default=5, ge=1)  # consecutive failures that open a circuit
    circuit_failure_rate: float = Field(default=0.5, gt=0, le=1)  # over the recent window
    circuit_min_calls: int = Field(default=20, ge=1)  # before the rate rule applies
    circuit_open_s: float = Field(default=30.0, gt=0)  # before the half-open probe


class QuotaSettings(_Strict):
    default_tenant: str = "default"
    per_message_allowance: int = Field(default=8, ge=0)  # tokens added per message to the bound
    # Tokens one input image may cost at most, on any provider (the reservation's bound). The
    # worst published count is OpenAI's gpt-4o-mini: 2833 base + 5667 per 512-px tile at high
    # detail; an image is scaled to fit 2048x2048, then its short side to 768, so at most 2x4
    # = 8 tiles: 2833 + 8 * 5667 = 48,169. Others are far below (gpt-4o 85 + 170 x 8 = 1,445;
    # patch-based gpt-4.1-mini / o4-mini ~2,500; Claude ~1,600 after its 1.15 MP resize;
    # Gemini 258 per 768-px tile, 1,120 at Gemini 3 high resolution). Rounded up to 50,000.
    # Lower it when no deployment bills images like gpt-4o-mini does.
    image_token_bound: int = Field(default=50_000, ge=0)


class CacheSettings(_Strict):
    enabled: bool = True  # for deterministic requests (temperature 0) only
    ttl_s: int = Field(default=7 * 86400, gt=0)
    # "tenant": a tenant is only ever answered from its own earlier replies. "global": any
    # tenant's identical request is a hit, which reveals that someone else asked it.
    scope: Literal["tenant", "global"] = "tenant"


class NightlySettings(_Strict):
    time: str = "02:00"  # UTC, HH:MM
    tenant: str = "nightly"
    budget_usd: Decimal | None = Field(default=None, ge=0)
    inbox: str | None = None  # a folder (or glob) of *.jsonl files
    report_dir: str = "reports"
    retry_failed_max: int = Field(default=2, ge=0)  # bounded re-runs of retryable failures
    # Issue 18: the run's jobs may wait for a provider batch lane, due `deadline_h` hours after
    # they are picked up (the lane is chosen only while that leaves the batch window + margin).
    batch_lane: bool = True
    deadline_h: float = Field(default=24.0, gt=0)

    @field_validator("time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        hh, sep, mm = v.partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ValueError(f"{v!r} is not a UTC time as HH:MM")
        return f"{int(hh):02d}:{int(mm):02d}"


class BatchLaneSettings(_Strict):
    """Provider batch lanes (issue 18): jobs with a deadline may go through a provider's batch
    API at its batch price. `flush_after_s`: a deployment's pending items are sent as one
    provider batch once the oldest waited this long (or at `max_jobs_per_batch`); `poll_s`:
    how often open provider batches are polled; `batch_discount`: the batch price as a share
    of the sync price where genai-prices knows no batch price for the model; `window_s`: how
    long llmq expects a provider batch to take and `margin_s`: the time kept in hand for the
    sync lane: the batch lane is chosen only while deadline - now > window_s + margin_s, and
    items still in a provider batch at deadline - margin_s are taken back to the sync lane."""

    enabled: bool = True
    flush_after_s: float = Field(default=60.0, ge=0)
    max_jobs_per_batch: int = Field(default=10_000, ge=1)
    poll_s: float = Field(default=60.0, gt=0)
    batch_discount: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    window_s: float = Field(default=3600.0, ge=0)
    margin_s: float = Field(default=3600.0, ge=0)


class MonitoringSettings(_Strict):
    log_json: bool = False
    failure_rate_alert: float = Field(default=0.5, gt=0, le=1)
    quota_use_alert: float = Field(default=0.9, gt=0, le=1)
    webhook_url: str | None = None


class LLMConfig(_Strict):
    """The whole `llm_config.yaml`."""

    default_provider: Provider = Field(default_factory=LLMProvider.seed_default)
    providers: dict[Provider, ProviderSettings] = Field(default_factory=dict)
    models: list[LLMModelConfig] = Field(default_factory=list)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    nightly: NightlySettings = Field(default_factory=NightlySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    batch_lane: BatchLaneSettings = Field(default_factory=BatchLaneSettings)

    @field_validator("providers", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (p if p is not None else {}) for k, p in v.items()}
        return v

    @model_validator(mode="after")
    def _check_models(self) -> LLMConfig:
        seen: set[str] = set()
        for i, m in enumerate(self.models):
            if m.deployment_id in seen:
                raise ValueError(
                    f"models[{i}]: deployment id {m.deployment_id!r} is repeated; "
                    "give one of them a distinct `id`"
                )
            seen.add(m.deployment_id)
        _check_shared_names(self.models)
        names = {m.name for m in self.models}
        for name, others in self.fallbacks.items():
            for other in [name, *others]:
                if other not in names:
                    raise ValueError(f"fallbacks.{name}: unknown model {other!r}")
        if sum(m.is_default for m in {m.name: m for m in self.models}.values()) > 1:
            defaults = sorted({m.name for m in self.models if m.is_default})
            if len(defaults) > 1:
                raise ValueError(f"models: more than one default model: {defaults}")
        return self

    def provider_settings(self, provider: str) -> ProviderSettings:
        return self.providers.get(provider) or ProviderSettings()

    def model_names(self) -> list[str]:
        return list(dict.fromkeys(m.name for m in self.models))

    def deployments_for(self, name: str) -> list[LLMModelConfig]:
        return [m for m in self.models if m.name == name]

    def default_model_name(self) -> str | None:
        """The `is_default` model, else the first of the default provider, else the first."""
        for m in self.models:
            if m.is_default:
                return m.name
        for m in self.models:
            if m.provider == self.default_provider:
                return m.name
        return self.models[0].name if self.models else None
