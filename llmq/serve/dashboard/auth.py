"""Dashboard sign-in: the session cookie, who it names, and the CSRF token of its forms.

Owns: `Viewer`, making and checking session tokens and CSRF tokens, and `scope_tenant`.

A session token is `<key id>.<expires unix s>.<signature>`: the signature is an HMAC-SHA256
keyed by the key's stored hash (plus `LLMQ_SERVE_SESSION_SECRET` when set), so any replica of
`llmq serve` can check it without shared state, it never contains the key or anything a key
could be recovered from, and revoking the key ends its sessions (the lookup by id then fails).
The cookie is HttpOnly, SameSite=Lax, Secure behind https. A form's CSRF token is the HMAC of
the session token under the same key: a page of another site can neither read nor forge it.

Must not: put a key in a cookie, a URL, a log line or a page; log tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from core.ledger import api_keys_repo
from core.ledger.api_keys_repo import KeyIdentity
from core.ledger.db import session_scope
from llmq.serve.state import ServeState

COOKIE = "llmq_session"
SESSION_S = 12 * 3600  # seconds a sign-in lasts


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the key's tenant, whether it sees every tenant, and its form token."""

    key_id: str
    tenant: str
    is_admin: bool
    csrf: str


def _mac(secret: str, key_hash: str, message: str) -> str:
    digest = hmac.new((secret + key_hash).encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_session(who: KeyIdentity, secret: str, now: float | None = None) -> str:
    """A signed session token for `who`, valid for SESSION_S seconds."""
    expires = int((time.time() if now is None else now) + SESSION_S)
    body = f"{who.key_id}.{expires}"
    return f"{body}.{_mac(secret, who.key_hash, body)}"


def csrf_token(token: str, who: KeyIdentity, secret: str) -> str:
    return _mac(secret, who.key_hash, "csrf." + token)


def read_session(
    state: ServeState, token: str | None, secret: str, now: float | None = None
) -> Viewer | None:
    """The viewer a session token names; None when absent, malformed, expired, forged, or its
    key was revoked."""
    if not token or token.count(".") != 2:
        return None
    key_id, expires, sig = token.split(".")
    if not expires.isdigit() or int(expires) < (time.time() if now is None else now):
        return None
    with session_scope(state.sessions) as session:
        who = api_keys_repo.identity_by_id(session, key_id)
    if who is None or not hmac.compare_digest(
        sig, _mac(secret, who.key_hash, f"{key_id}.{expires}")
    ):
        return None
    return Viewer(who.key_id, who.tenant, who.is_admin, csrf_token(token, who, secret))


def sign_in(state: ServeState, key: str) -> KeyIdentity | None:
    """The identity of a presented key (by its hash); None for an unknown or revoked one."""
    with session_scope(state.sessions) as session:
        return api_keys_repo.identity_for(session, key.strip())


def csrf_ok(viewer: Viewer, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(viewer.csrf, presented or "")


def scope_tenant(viewer: Viewer, asked: str | None) -> str | None:
    """The tenant a page shows: always the viewer's own, unless an admin asks for one (or for
    all: None)."""
    if not viewer.is_admin:
        return viewer.tenant
    return asked or None


def may_see(viewer: Viewer, owner: str | None) -> bool:
    """Whether an object owned by `owner` (None: no such object) is visible; an invisible one
    answers 404 like a missing one, so ids of other tenants are not revealed."""
    return owner is not None and (viewer.is_admin or owner == viewer.tenant)
