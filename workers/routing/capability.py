"""Capability routing: may a deployment serve a request's features? One rule for both paths.

Owns: `can_serve` (the rule) and `missing` (what a deployment lacks, for messages). A
deployment can serve a request when every `Feature` the request needs
(`schemas.request.required_features`) is among what it honours (`capabilities_of`: the
adapter's built-in capabilities for the model, changed by the deployment's `capabilities:` in
llm_config.yaml, for the dialect its provider settings choose). The queue's routing and the
direct call (`LLMProviderManager.call_model`) both ask this, so neither sends a request where
the adapter would have to refuse or drop a feature. Must not: do I/O, read health, prices or
the clock; it is a pure function of the deployment, the features and the config.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.config import LLMConfig, LLMModelConfig
from schemas.request import Feature, in_order
from workers.providers import capabilities_of


def missing(dep: LLMModelConfig, required: frozenset[Feature], config: LLMConfig) -> list[Feature]:
    """The required features `dep` cannot honour, in `Feature` declaration order."""
    if not required:
        return []
    return in_order(required - capabilities_of(dep, config))


def can_serve(dep: LLMModelConfig, required: frozenset[Feature], config: LLMConfig) -> bool:
    """True when `dep` honours every feature in `required` (always, when none is required)."""
    return not missing(dep, required, config)


def incapable_ids(
    deployments: Iterable[LLMModelConfig], required: frozenset[Feature], config: LLMConfig
) -> frozenset[str]:
    """Deployment ids among `deployments` that cannot serve `required` (for `excluded`)."""
    if not required:
        return frozenset()
    return frozenset(d.deployment_id for d in deployments if not can_serve(d, required, config))
