"""The response cache's pure half: which requests may be answered from the ledger, and their key.

Owns: `cache_key` (a digest of what decides a deterministic answer: the model name, the
messages in order (with their content parts, tool calls and tool-call ids), the system prompt
and the output-changing parameters, temperature and max_tokens, plus the request features of
issue 15: response_format with its schema, tools, tool_choice, parallel_tool_calls and every
sampling parameter; never the provider or deployment, so an answer from any deployment of the
model serves them all. The new parts enter the key only when present, so a plain-text job keeps
the key it had before, under the same KEY_VERSION), `is_cacheable(spec, config)` and `keys_for` (the producer computes the key at
submit and stores it on the job; NULL = never looked up and never an entry). Must not: do I/O,
read a clock, or import provider, routing or ledger code: the producer imports this module.

Where the rest lives: the lookup and the recording of a hit in `core.ledger.cache_repo`; the
call of both, right after the claim and before routing and quota, in `workers.pipeline`.

Embedding jobs (issue 17) are always deterministic: their key is `embedding_key` (model,
inputs, dimensions, input type, with the configured defaults resolved), whatever the
temperature rules below say. Only deterministic chat requests are cached: effective temperature 0, i.e. the job's own
temperature, or, when it sets none, the configured temperature of every deployment that could
serve it (the model's own and its fallbacks', since `call_and_finish` sends the serving
deployment's temperature). Switches, all of which must allow it: `cache.enabled` in the config
(global), the batch's `use_cache` (`llmq submit --no-cache`), and the job's `"cache": false`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.config import LLMConfig
from schemas.job import ChatMessage, JobSpec
from schemas.request import Features

__all__ = [
    "KEY_VERSION",
    "cache_key",
    "effective_max_tokens",
    "embedding_key",
    "is_cacheable",
    "key_for",
    "keys_for",
]

# Bump when the key's content changes: old entries then simply stop matching.
KEY_VERSION = 1
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # stateless, reusable


def cache_key(
    model: str,
    messages: Iterable[ChatMessage],
    system: str | None,
    temperature: float,
    max_tokens: int | None,
    features: Features | None = None,
    tenant: str | None = None,
) -> str:
    """A 64-character hex SHA-256 of the request's output-deciding parts.

    Args:
        model: the requested model name (as configured), not a provider's model id.
        messages: the chat messages, in order (order changes the answer, so the key).
        system: the system prompt (None and "" are the same request).
        temperature: the effective temperature.
        max_tokens: the effective completion limit in tokens; None = the deployments' default.
        features: response_format, tools, tool_choice, sampling; None or empty = plain text.
        tenant: the asking tenant when the cache is tenant-scoped (`cache.scope: tenant`, the
            default), so one tenant's request never matches another's entry; None = shared.
    """
    body = [
        KEY_VERSION,
        model,
        system or None,
        float(temperature),  # 0 and 0.0 are one request
        max_tokens,
        [_message(m) for m in messages],
    ]
    if features is not None and not features.is_empty:
        # The compact dump: only what was asked for, in field order; user schemas keep their
        # key order (it decides the order of keys in a structured reply, so it is the request).
        body.append(features.model_dump(mode="json"))
    if tenant is not None:
        body.append(["tenant", tenant])
    # Canonical: a fixed-position JSON array, no whitespace, UTF-8 (not \u escapes), so one
    # request has exactly one byte string. Messages stay separate pairs: "ab"+"c" != "a"+"bc".
    # surrogatepass: never raise on text the parser would have refused anyway.
    canonical = _CANONICAL.encode(body).encode("utf-8", "surrogatepass")
    return hashlib.sha256(canonical).hexdigest()


def embedding_key(
    model: str,
    inputs: Sequence[str],
    dimensions: int | None,
    input_type: str | None,
    tenant: str | None = None,
) -> str:
    """The key of an embedding request (issue 17): model, inputs in order, dimensions and
    input type. Embeddings are deterministic, so temperature plays no part; a leading
    "embedding" tag keeps these keys apart from every chat key."""
    body: list[Any] = [KEY_VERSION, "embedding", model, list(inputs), dimensions, input_type]
    if tenant is not None:
        body.append(["tenant", tenant])
    canonical = _CANONICAL.encode(body).encode("utf-8", "surrogatepass")
    return hashlib.sha256(canonical).hexdigest()


def _message(m: ChatMessage) -> list[Any]:
    """A plain turn stays ``[role, text]`` (the key it always had); any other is a 4-item
    ``[role, content, tool calls, tool_call_id]``, so the two shapes can never collide."""
    if isinstance(m.content, str) and m.tool_calls is None and m.tool_call_id is None:
        return [m.role, m.content]
    content: Any = m.content
    if isinstance(content, tuple):
        content = [p.model_dump(mode="json") for p in content]
    calls = None if m.tool_calls is None else [[c.id, c.name, c.arguments] for c in m.tool_calls]
    return [m.role, content, calls, m.tool_call_id]


@dataclass(frozen=True, slots=True)
class _ModelDefaults:
    """What the config says about a model name, for jobs that leave a parameter unset."""

    deterministic: bool  # every deployment that may serve it runs at temperature 0
    max_tokens: int | None  # the default its deployments share; None if they differ

    @classmethod
    def of(cls, model: str, config: LLMConfig) -> _ModelDefaults:
        names = [model, *config.fallbacks.get(model, [])]
        temps = [d.temperature for n in names for d in config.deployments_for(n)]
        limits = {d.max_tokens for d in config.deployments_for(model)}
        return cls(
            deterministic=bool(temps) and all(t == 0 for t in temps),
            max_tokens=limits.pop() if len(limits) == 1 else None,
        )


def is_cacheable(spec: JobSpec, config: LLMConfig) -> bool:
    """True if the job may be answered from, and become, a cache entry.

    The batch-level switch (`use_cache`) is applied by `keys_for`; `spec.model` must be
    resolved (the producer's parser does that).
    """
    return _cacheable(spec, config, None)


def effective_max_tokens(spec: JobSpec, config: LLMConfig) -> int | None:
    """The job's max_tokens, else the default its deployments share (None if they differ).

    Resolving the default makes an explicit `max_tokens` equal to it the same request, and a
    changed default in the config a different one.
    """
    if spec.max_tokens is not None:
        return spec.max_tokens
    return _ModelDefaults.of(spec.model or "", config).max_tokens


def key_for(spec: JobSpec, config: LLMConfig, tenant: str | None = None) -> str | None:
    """The job's cache key, or None when it is not cacheable (see `is_cacheable`).

    `tenant` is the submitting tenant; it enters the key unless `cache.scope` is "global"."""
    return _key(spec, config, {}, _scope(config, tenant))


def keys_for(
    specs: Sequence[JobSpec],
    config: LLMConfig,
    use_cache: bool = True,
    tenant: str | None = None,
) -> list[str | None]:
    """One key per spec, in order; all None when the batch opted out (`--no-cache`).

    Every submit path passes its tenant: with the default tenant scope, keys then never
    match across tenants (issue 20: a hit would reveal that another tenant asked)."""
    if not (use_cache and config.cache.enabled):
        return [None] * len(specs)
    per_model: dict[str, _ModelDefaults] = {}  # a batch names few models: look each up once
    scope = _scope(config, tenant)
    return [_key(s, config, per_model, scope) for s in specs]


def _scope(config: LLMConfig, tenant: str | None) -> str | None:
    return tenant if config.cache.scope == "tenant" else None


def _defaults(
    model: str, config: LLMConfig, memo: dict[str, _ModelDefaults] | None
) -> _ModelDefaults:
    if memo is None:
        return _ModelDefaults.of(model, config)
    found = memo.get(model)
    if found is None:
        found = memo[model] = _ModelDefaults.of(model, config)
    return found


def _cacheable(spec: JobSpec, config: LLMConfig, memo: dict[str, _ModelDefaults] | None) -> bool:
    if not (config.cache.enabled and spec.cache and spec.model):
        return False
    if spec.embedding is not None:  # deterministic whatever the temperature rules say
        return True
    if spec.temperature is not None:
        return spec.temperature == 0
    return _defaults(spec.model, config, memo).deterministic


def _key(
    spec: JobSpec, config: LLMConfig, memo: dict[str, _ModelDefaults], tenant: str | None
) -> str | None:
    if spec.model is None or not _cacheable(spec, config, memo):
        return None
    if (e := spec.embedding) is not None:
        input_type = e.input_type or _configured_input_type(spec.model, config)
        dims = e.dimensions or _configured_dimensions(spec.model, config)
        return embedding_key(spec.model, e.inputs, dims, input_type, tenant=tenant)
    max_tokens = spec.max_tokens
    if max_tokens is None:
        max_tokens = _defaults(spec.model, config, memo).max_tokens
    return cache_key(
        spec.model, spec.messages, spec.system, 0.0, max_tokens, spec.features, tenant=tenant
    )


def _configured_input_type(model: str, config: LLMConfig) -> str | None:
    """The input type the model's deployments are configured with (the first one given)."""
    return next((d.input_type for d in config.deployments_for(model) if d.input_type), None)


def _configured_dimensions(model: str, config: LLMConfig) -> int | None:
    """The vector length the model's deployments return (they share one, see config)."""
    return next((d.dimensions for d in config.deployments_for(model) if d.dimensions), None)
