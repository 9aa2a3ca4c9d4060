"""What each deployment can honour, for the producer `Client` the CLI builds.

Owns: binding the provider registry's resolver (`workers.providers.capabilities_of`) to a
config, so `llmq submit`, `llmq run` and `llmq demo` reject a line whose features no deployment
of its model or its fallbacks honours (``line N: no deployment of MODEL supports FEATURE``)
before anything is written. The producer cannot import provider code itself; the CLI hands it
this function. Must not: decide capabilities (the adapters and llm_config.yaml do).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.jsonl import Capabilities
    from producer.client import Client
    from schemas.config import LLMConfig


def for_config(config: LLMConfig) -> Capabilities:
    """`capabilities_of` with the config whose provider settings choose each dialect."""
    from workers.providers import capabilities_of

    return partial(capabilities_of, config=config)


def attach(client: Client) -> Client:
    """Give `client` the registry's capabilities for its own config, resolved lazily: the
    config is read only when a submit first needs it (status, results, ... never do)."""
    from workers.providers import capabilities_of

    client.capabilities = lambda deployment: capabilities_of(deployment, config=client.config)
    return client
