"""What every request needs (database sessions, broker URL, model config, settings) and the
API key check that turns a request into a tenant.

Owns: `ServeState` (built once per process by `app.create_app`, never at import) and the
`api_key` dependency with `tenant_of`. Must not: log or store a presented key; the key is hashed and looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.ledger import api_keys_repo
from core.ledger.api_batches_repo import LiveCounts
from core.ledger.db import session_scope
from llmq.serve.errors import ApiError
from llmq.serve.live import LiveMemo
from llmq.serve.settings import ServeSettings
from schemas.config import LLMConfig, LLMModelConfig
from schemas.request import Feature


@dataclass
class ServeState:
    engine: Engine
    sessions: sessionmaker[Session]
    broker_url: str
    config: LLMConfig
    settings: ServeSettings
    live: LiveMemo[LiveCounts] = field(default_factory=lambda: LiveMemo(0.0))

    def __post_init__(self) -> None:
        self.live.ttl_s = self.settings.poll_cache_s

    def close(self) -> None:
        self.engine.dispose()

    def capabilities(self, deployment: LLMModelConfig) -> frozenset[Feature]:
        """What a deployment can honour, for the submit-time check (`line N: no deployment of
        MODEL supports FEATURE`), from the provider registry and the config's overrides."""
        from workers.providers import capabilities_of

        return capabilities_of(deployment, self.config)


async def get_state(request: Request) -> ServeState:
    return request.app.state.llmq  # type: ignore[no-any-return]


async def api_key(request: Request) -> str:
    """The key of `Authorization: Bearer <key>` (no I/O, so no thread hop); 401 when absent.
    Routes resolve it with `tenant_of` inside the thread that does their ledger work."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
        )
    return key


def tenant_of(state: ServeState, key: str) -> str:
    """The tenant of a presented key (looked up by its hash); 401 when unknown or revoked."""
    with session_scope(state.sessions) as session:
        found = api_keys_repo.tenant_for(session, key)
    if found is None:
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    return found
