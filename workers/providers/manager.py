"""`LLMProviderManager`: the documented direct-call API (no queue, no ledger).

Owns: the facade users of AI_BackLog_Assistant already call: `call_model`,
`get_available_models`, `set_default_model`, `add_model`, `remove_model`,
`update_provider_config`, `get_provider_status`. A call's arguments are a JSONL line's, checked
by the same rules (workers/direct_args.py). A call follows the queue's policy
(workers/direct_call.py): `rank_candidates` over the model's own deployments, then the models
in the config's `fallbacks` for it (only those: no fallbacks, no fallback), and `retry.decide`
after each failure, sleeping (bounded) where a queued job would be requeued. Deployment health
(cooldowns, circuits, rate windows) lives in an in-memory health store per instance, the
per-provider figures of `get_provider_status` beside it. Must not: write the ledger, enqueue
jobs, decide routing or retries itself, or rebuild adapters per call (they are built once per
deployment and shared).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from core.errors import ConfigError, LLMProviderError
from core.secrets_scrub import scrub
from schemas.config import LLMConfig, LLMModelConfig, LLMProvider, ProviderName, ProviderSettings
from schemas.job import ChatMessage, Usage
from schemas.request import NamedToolChoice, ResponseFormat, ToolSpec
from workers.direct_args import call_spec
from workers.direct_call import DirectDeps, GaveUp, call_direct
from workers.direct_errors import gave_up
from workers.pricing import Price, cost, price_for
from workers.providers import REGISTRY, build_adapter, env_names, has_credentials
from workers.providers.base import ProviderAdapter, ProviderReply, ProviderRequest
from workers.providers.config import load_config, with_env_keys
from workers.providers.http import make_client
from workers.routing.health import MemoryHealthStore
from workers.routing.select import Candidate, RouteRequest
from workers.usage_check import usage_problem

WINDOW = 100  # calls kept per provider for success rate and latency


class _ProviderStats:
    __slots__ = ("outcomes", "latencies", "last_error", "last_error_at", "calls")

    def __init__(self) -> None:
        self.outcomes: deque[bool] = deque(maxlen=WINDOW)
        self.latencies: deque[int] = deque(maxlen=WINDOW)
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.calls = 0


class LLMProviderManager:
    """Direct calls to the configured models, with retries and fallbacks.

    Parameters:
        config: the configuration; None loads `llm_config.yaml` (see `load_config`). Provider
            keys missing from it are filled from the environment / `.env`.
        client: an httpx client to share; one is made (and closed by `close()`) otherwise.
        env: the environment mapping for keys (default `os.environ`).
        max_retries: sleeps one call may make (a backoff before retrying, or a wait for a
            cooling or rate-limited deployment) before it gives up; where a queued job would
            be requeued, the direct call sleeps instead.
        max_wait_s: the longest single sleep (seconds); a longer wait (e.g. a long
            Retry-After with no fallback left) gives up at once instead.
        sleep, rng: injectable for tests (seconds -> None; () -> float in [0, 1)).
    """

    def __init__(
        self,
        config: LLMConfig | None = None,
        *,
        client: httpx.Client | None = None,
        env: Mapping[str, str] | None = None,
        max_retries: int = 2,
        max_wait_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        env = os.environ if env is None else env
        self.config = load_config(env=env) if config is None else with_env_keys(config, env)
        self._owns_client = client is None
        self._client = client or make_client()
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._rng = rng
        self._lock = threading.Lock()
        self._adapters: dict[str, ProviderAdapter] = {}
        self._prices: dict[str, Price | None] = {}
        self._stats = {p: _ProviderStats() for p in REGISTRY}
        # Cooldowns, circuits and rate windows for this instance's calls (one process, so
        # the in-memory store; the queue's workers share theirs through Redis).
        self._health = MemoryHealthStore()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> LLMProviderManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- configuration --------------------------------------------------------------------

    def get_available_models(self) -> list[str]:
        """Configured model names, in config order, each once."""
        return self.config.model_names()

    def get_model_config(self, model_name: str) -> LLMModelConfig | None:
        deployments = self.config.deployments_for(model_name)
        return deployments[0] if deployments else None

    def set_default_model(self, model_name: str) -> None:
        self._require(model_name)
        models = [
            m.model_copy(update={"is_default": m.name == model_name}) for m in self.config.models
        ]
        self._replace(models=models)

    def add_model(self, model: LLMModelConfig) -> None:
        """Add a deployment (one with the same deployment id is replaced)."""
        models = [m for m in self.config.models if m.deployment_id != model.deployment_id]
        if model.is_default:
            models = [m.model_copy(update={"is_default": False}) for m in models]
        self._replace(models=[*models, model])

    def remove_model(self, model_name: str) -> None:
        self._require(model_name)
        fallbacks = {
            k: [n for n in v if n != model_name]
            for k, v in self.config.fallbacks.items()
            if k != model_name
        }
        models = [m for m in self.config.models if m.name != model_name]
        self._replace(models=models, fallbacks=fallbacks)

    def update_provider_config(
        self, provider: LLMProvider | str, settings: Mapping[str, Any] | ProviderSettings
    ) -> None:
        """Merge `settings` (api_base, organization, headers, ...) into a provider's settings."""
        provider = _registered(provider)
        if isinstance(settings, ProviderSettings):
            update = {k: getattr(settings, k) for k in settings.model_fields_set}
        else:
            try:
                checked = ProviderSettings.model_validate(dict(settings))
            except ValidationError as exc:
                raise ConfigError(f"providers.{provider.value}: {exc.errors()[0]['msg']}") from None
            update = {k: getattr(checked, k) for k in checked.model_fields_set}
        current = self.config.provider_settings(provider)
        providers = {**self.config.providers, provider: current.model_copy(update=update)}
        self._replace(providers=providers)

    def _replace(self, **changes: Any) -> None:
        fields = {name: getattr(self.config, name) for name in LLMConfig.model_fields}
        try:
            config = LLMConfig(**{**fields, **changes})
        except ValidationError as exc:
            raise ConfigError(f"invalid change: {exc.errors()[0]['msg']}") from None
        with self._lock:
            self.config = config
            self._adapters.clear()  # rebuilt lazily with the new settings
            self._prices.clear()

    def _require(self, model_name: str) -> list[LLMModelConfig]:
        deployments = self.config.deployments_for(model_name)
        if not deployments:
            known = ", ".join(self.config.model_names()) or "(none configured)"
            raise LLMProviderError(f"unknown model {model_name!r}; known models: {known}")
        return deployments

    # ---- status -----------------------------------------------------------------------------

    def get_provider_status(self, provider: LLMProvider | str) -> dict[str, Any]:
        """Whether the provider is configured and has a key, and how recent calls went."""
        provider = _registered(provider)
        deployments = [m for m in self.config.models if m.provider == provider]
        key_present = any(has_credentials(m, self.config) for m in deployments)
        if not deployments:
            settings = self.config.provider_settings(provider)
            key_present = settings.api_key is not None or not REGISTRY[provider].requires_key
        with self._lock:
            stats = self._stats[provider]
            outcomes, latencies = list(stats.outcomes), list(stats.latencies)
            last_error, calls = stats.last_error, stats.calls
        failed_last = bool(outcomes) and not outcomes[-1]
        if not deployments:
            status, message = "unconfigured", "no model uses this provider"
        elif not key_present:
            names = " or ".join(env_names(provider)) or "an api_key"
            status, message = "no_key", f"no API key: set {names}"
        elif failed_last:
            status, message = "error", last_error or "last call failed"
        else:
            status, message = "ok", "ready" if not calls else "last call succeeded"
        return {
            "provider": provider.value,
            "status": status,
            "message": message,
            "configured": bool(deployments),
            "key_present": key_present,
            "models": list(dict.fromkeys(m.name for m in deployments)),
            "last_error": last_error,
            "calls": calls,
            "success_rate": (sum(outcomes) / len(outcomes)) if outcomes else None,
            "latency_ms": (sum(latencies) / len(latencies)) if latencies else None,
        }

    def _record(self, provider: LLMProvider, error: Exception | None, latency_ms: int = 0) -> None:
        with self._lock:
            stats = self._stats[provider]
            stats.calls += 1
            stats.outcomes.append(error is None)
            if error is None:
                stats.latencies.append(latency_ms)
            else:
                stats.last_error = scrub(f"{type(error).__name__}: {error}")
                stats.last_error_at = time.time()

    # ---- calls ------------------------------------------------------------------------------

    def call_model(  # noqa: PLR0913 - the JSONL line's parameters, one each (issue 15)
        self,
        prompt: str | None = None,
        model_name: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        messages: Sequence[Mapping[str, Any] | ChatMessage] | None = None,
        system: str | None = None,
        *,
        max_completion_tokens: int | None = None,
        response_format: Mapping[str, Any] | ResponseFormat | None = None,
        tools: Sequence[Mapping[str, Any] | ToolSpec] | None = None,
        tool_choice: str | Mapping[str, Any] | NamedToolChoice | None = None,
        parallel_tool_calls: bool | None = None,
        stop: str | Sequence[str] | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Call a model (default: the config's default) and return the result dict.

        Takes what a native JSONL line takes, checked by the same rules (`workers.direct_args`):
        `messages` may hold content parts (text, image_url), assistant `tool_calls` and `tool`
        results; `response_format` (json_object / json_schema), `tools`, `tool_choice`,
        `parallel_tool_calls`, `stop`, `top_p`, `seed`, the penalties and `user` reach the
        adapter as features, and deployments that cannot honour them are skipped.

        Returns: `response` (text), `model`, `provider`, `model_id`, `deployment`,
        `finish_reason`, `usage` {prompt_tokens, completion_tokens, total_tokens, estimated},
        `cost_usd` (Decimal, None when the price is unknown), `latency_ms`, `request_id`,
        `attempts` (provider calls made), `fallback` (True when one of the model's configured
        fallback models answered), `tool_calls` (OpenAI's shape: ``[{"id", "type":
        "function", "function": {"name", "arguments"}}]``, arguments a JSON string; [] when
        none), `parsed` (the JSON value when JSON was asked for and the reply is JSON that
        fits; else None) and `refusal` (the model's refusal text, else None).

        Raises:
            LLMProviderError: unknown model; `BadRequest` for input JSONL would reject (naming
                the parameter) or features no deployment honours; every candidate failed (the
                last failure's class, e.g. `RateLimited`, or `InvalidOutput` when JSON or tool
                calls came back not fitting the request, with all attempts in the message); or
                a wait longer than `max_wait_s` / more than `max_retries` waits was needed.
        """
        name = model_name or self._default_name()
        self._require(name)
        config = self.config  # one config for the whole call, even if another thread edits it
        fields = {
            "system": system,
            "max_tokens": max_tokens,
            "max_completion_tokens": max_completion_tokens,
            "temperature": temperature,
            "response_format": response_format,
            "tools": tools,
            "tool_choice": tool_choice,
            "parallel_tool_calls": parallel_tool_calls,
            "stop": stop,
            "top_p": top_p,
            "seed": seed,
            "presence_penalty": presence_penalty,
            "frequency_penalty": frequency_penalty,
            "user": user,
        }
        spec = call_spec(config, name, prompt, messages, fields)
        tiers = (name, *config.fallbacks.get(name, []))
        route = {m.deployment_id: m for n in tiers for m in config.deployments_for(n)}
        deps = DirectDeps(
            config=config,
            health=self._health,
            prices={dep_id: self._price(m) for dep_id, m in route.items()},
            has_key={dep_id: has_credentials(m, config) for dep_id, m in route.items()},
            call=self._send,
            keys=lambda cand: self._adapter(cand.deployment).keys,
            sleep=self._sleep,
            rng=self._rng,
        )
        request = RouteRequest(name, tuple(spec.messages), spec.system, spec.max_tokens)
        result = call_direct(
            request, spec.temperature, deps, self.max_retries, self.max_wait_s, spec.features
        )
        if isinstance(result, GaveUp):
            raise gave_up(name, list(route.values()), deps.has_key, result)
        dep = result.candidate.deployment
        out = self._result(dep, result.reply, result.attempts, fallback=dep.name != name)
        return {**out, "parsed": result.parsed}

    def _default_name(self) -> str:
        name = self.config.default_model_name()
        if name is None:
            raise LLMProviderError("no models configured; add one to llm_config.yaml")
        return name

    def _send(self, cand: Candidate, req: ProviderRequest, key_fp: str | None) -> ProviderReply:
        """One call through the deployment's shared adapter with the key admission chose,
        counted for `get_provider_status`."""
        provider = cand.deployment.provider
        try:
            reply = self._adapter(cand.deployment).complete(req, key_fp)
        except LLMProviderError as exc:
            self._record(provider, exc)
            raise
        self._record(provider, None, reply.latency_ms)
        return reply

    def _adapter(self, deployment: LLMModelConfig) -> ProviderAdapter:
        key = deployment.deployment_id
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = build_adapter(deployment, self.config, self._client)
            self._adapters[key] = adapter
        return adapter

    def _price(self, deployment: LLMModelConfig) -> Price | None:
        key = deployment.deployment_id
        if key not in self._prices:
            self._prices[key] = price_for(deployment, datetime.now(UTC))
        return self._prices[key]

    def _result(
        self, deployment: LLMModelConfig, reply: ProviderReply, attempts: int, fallback: bool
    ) -> dict[str, Any]:
        usage, price = reply.usage, self._price(deployment)
        # Issue 20: absurd or negative counts are never passed on as usage or priced; the
        # caller sees why, and the cost as unknown (there is no reservation to book here).
        problem = usage_problem(usage, deployment.context_window, deployment.max_tokens or 0)
        if problem is not None:
            usage, price = Usage(estimated=True), None
        return {
            "response": reply.text,
            "model": deployment.name,
            "provider": deployment.provider.value,
            "model_id": deployment.model_id,
            "deployment": deployment.deployment_id,
            "finish_reason": reply.finish_reason,
            # totals, the classes inside them (issue 19) and whether they were estimated
            "usage": {**usage.model_dump(), "total_tokens": usage.total_tokens},
            "cost_usd": cost(usage, price, datetime.now(UTC)) if problem is None else None,
            "usage_problem": problem,
            "latency_ms": reply.latency_ms,
            "request_id": reply.request_id,
            "attempts": attempts,
            "fallback": fallback,
            "tool_calls": [call.openai() for call in reply.tool_calls],
            "refusal": reply.refusal,
        }


def _registered(provider: LLMProvider | str) -> LLMProvider | ProviderName:
    """A registered provider's name (a 7th provider too); ValueError otherwise, as before."""
    name = str(getattr(provider, "value", provider))
    if name not in REGISTRY:
        raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(REGISTRY)}")
    try:
        return LLMProvider(name)
    except ValueError:
        return ProviderName(name)
