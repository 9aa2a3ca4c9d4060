"""API keys of `llmq serve`: create, list, revoke, and resolve a presented key to its tenant.

Owns: the `api_keys` table. A key is shown once, at creation; only its SHA-256 is stored (keys
carry 256 random bits, so a fast hash is enough: there is nothing to brute-force). Must not:
commit (callers pass an open Session), log or return a key after `create_key`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.ledger.models import ApiKey

KEY_PREFIX = "llmq-"


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never the key itself, nor any part of it."""

    id: str
    tenant: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    is_admin: bool = False

    def to_json(self) -> dict[str, str | bool | None]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "admin": self.is_admin,
        }


@dataclass(frozen=True)
class KeyIdentity:
    """Who a presented key is: its id (for the dashboard's session), tenant and admin flag."""

    key_id: str
    tenant: str
    is_admin: bool
    # the stored SHA-256 of the key: signs the key's dashboard sessions (never shown)
    key_hash: str = field(default="", repr=False)


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    session: Session, tenant: str, name: str | None, now: datetime, *, admin: bool = False
) -> tuple[str, str]:
    """Store a new key for `tenant`; returns (key id, the key). The key is not stored.
    `admin`: the dashboard shows this key every tenant (the API still acts as `tenant`)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    session.add(
        ApiKey(
            id=key_id,
            tenant=tenant,
            name=name,
            key_hash=hash_key(key),
            created_at=now,
            is_admin=admin,
        )
    )
    return key_id, key


def list_keys(session: Session, tenant: str | None = None) -> list[KeyInfo]:
    """Every key (or one tenant's), oldest first, revoked ones included."""
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        stmt = stmt.where(ApiKey.tenant == tenant)
    return [
        KeyInfo(k.id, k.tenant, k.name, k.created_at, k.revoked_at, k.is_admin)
        for k in session.scalars(stmt)
    ]


def revoke_key(session: Session, key_id: str, now: datetime) -> bool:
    """Revoke a key; False when no such (unrevoked) key exists."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def tenant_for(session: Session, key: str) -> str | None:
    """The tenant a presented key belongs to; None for an unknown or revoked key."""
    return session.scalar(
        select(ApiKey.tenant).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )


def identity_for(session: Session, key: str) -> KeyIdentity | None:
    """Id, tenant and admin flag of a presented key; None for an unknown or revoked key."""
    row = session.execute(
        select(ApiKey.id, ApiKey.tenant, ApiKey.is_admin, ApiKey.key_hash).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
        )
    ).first()
    return KeyIdentity(row.id, row.tenant, bool(row.is_admin), row.key_hash) if row else None


def identity_by_id(session: Session, key_id: str) -> KeyIdentity | None:
    """The same for a key id (a dashboard session names its key by id); None once revoked,
    so revoking a key also ends its dashboard sessions."""
    row = session.execute(
        select(ApiKey.id, ApiKey.tenant, ApiKey.is_admin, ApiKey.key_hash).where(
            ApiKey.id == key_id, ApiKey.revoked_at.is_(None)
        )
    ).first()
    return KeyIdentity(row.id, row.tenant, bool(row.is_admin), row.key_hash) if row else None
