"""API keys with rotation: several keys per deployment, key files, revoked keys leaving.

Owns: `KeyPool` (a deployment's keys, handed out round-robin; a key file re-read when its
mtime changes or on SIGHUP; a key that answered 401/403 leaves every pool of this process with
a warning and an alert), `fingerprint` (the only way a key is ever named: the first 8 hex of
its sha256), `read_key_file`, `reload_key_files` and `install_sighup_reload`.
Must not: log, store or return a key anywhere but in the request it authenticates; name a
provider.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from core.secrets_scrub import register_secrets
from schemas.config import secret_text_problem

log = logging.getLogger("llmq.alerts")

_REVOKED: set[str] = set()  # fingerprints that answered 401/403 in this process
_POOLS: weakref.WeakSet[KeyPool] = weakref.WeakSet()
_LOCK = threading.Lock()


class Key(NamedTuple):
    value: str
    fingerprint: str


def fingerprint(value: str) -> str:
    """A stable, non-secret name for a key: the first 8 hex digits of its sha256."""
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def read_key_file(path: str) -> str:
    """The key in a Docker/Kubernetes secret file: its content minus one trailing newline.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is empty, or the key has a newline or control character in it.
    """
    text = Path(path).read_text(encoding="utf-8")
    text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
    if not text:
        raise ValueError("is empty")
    problem = secret_text_problem(text)
    if problem:
        raise ValueError(problem)
    return text


class KeyPool:
    """One deployment's keys, used round-robin. Thread-safe; cheap per call.

    Parameters:
        keys: literal key values (config `api_key` / `api_keys`, env `*_API_KEY(S)`).
        key_file: a file holding one more key, re-read when its mtime changes.
        label: the deployment id, for log lines (never a key).
        on_revoke: called with (label, fingerprint) when a key leaves (e.g. a webhook alert).
    """

    def __init__(
        self,
        keys: Sequence[str] = (),
        key_file: str | None = None,
        label: str = "",
        on_revoke: Callable[[str, str], None] | None = None,
    ) -> None:
        self.label = label
        self.key_file = key_file
        self._static = tuple(Key(k, fingerprint(k)) for k in dict.fromkeys(keys) if k)
        self._file_key: Key | None = None
        self._file_stamp: tuple[float, int] | None = None
        self._next = 0
        self._lock = threading.Lock()
        self._on_revoke = on_revoke
        register_secrets(k.value for k in self._static)
        if key_file:
            self.reload()
        with _LOCK:
            _POOLS.add(self)

    def __bool__(self) -> bool:
        return bool(self._static or self.key_file)

    def reload(self, force: bool = False) -> None:
        """Re-read the key file if its mtime or size changed (or always, with `force`).

        A file that cannot be read or holds no valid key keeps the previous key, with a warning.
        """
        if not self.key_file:
            return
        try:
            st = os.stat(self.key_file)
        except OSError as exc:
            log.warning("%s: key file unreadable (%s); keeping the last key", self.label, exc)
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._file_stamp and not force:
            return
        try:
            value = read_key_file(self.key_file)
        except (OSError, ValueError) as exc:
            log.warning("%s: key file %s; keeping the last key", self.label, exc)
            return
        register_secrets([value])
        key = Key(value, fingerprint(value))
        with self._lock:
            changed = self._file_key is not None and self._file_key != key
            self._file_key, self._file_stamp = key, stamp
        if changed:
            log.info("%s: key file changed; now using key %s", self.label, key.fingerprint)

    def keys(self) -> list[Key]:
        """The keys still in the pool, file key last."""
        found = [*self._static, *([self._file_key] if self._file_key else [])]
        return [k for k in found if k.fingerprint not in _REVOKED]

    def take(self) -> Key | None:
        """The next live key, round-robin; None when every key was revoked (or none set)."""
        self.reload()
        live = self.keys()
        if not live:
            return None
        with self._lock:
            i = self._next % len(live)
            self._next = i + 1
        return live[i]

    def in_turn(self) -> list[Key]:
        """The live keys in round-robin order from the next one; the turn moves on by one.

        Admission tries them in this order and takes the first whose rate-limit bucket has
        headroom, so the keys share the load without one key's window starving the others.
        """
        self.reload()
        live = self.keys()
        if not live:
            return []
        with self._lock:
            i = self._next % len(live)
            self._next = i + 1
        return [*live[i:], *live[:i]]

    def get(self, fp: str) -> Key | None:
        """The live key with this fingerprint (None: unknown, revoked or rotated out)."""
        return next((k for k in self.keys() if k.fingerprint == fp), None)

    @property
    def rotating(self) -> bool:
        """Several keys configured: each then has its own rate-limit bucket and cooldown."""
        return len(self._static) + (1 if self.key_file else 0) > 1

    def revoke(self, key: Key, status: int) -> bool:
        """`key` answered `status` (401/403): it leaves every pool of this process.

        Returns True when this pool still has another key to try.
        """
        with _LOCK:
            first = key.fingerprint not in _REVOKED
            _REVOKED.add(key.fingerprint)
        if first:
            log.warning(
                "%s: key %s answered HTTP %s; it leaves the pool (%d key(s) left)",
                self.label,
                key.fingerprint,
                status,
                len(self.keys()),
            )
            if self._on_revoke is not None:
                self._on_revoke(self.label, key.fingerprint)
        return bool(self.keys())


def is_revoked(value: str) -> bool:
    """Whether this key answered 401/403 in this process."""
    return fingerprint(value) in _REVOKED


def revoke_alert(config: Any) -> Callable[[str, str], None] | None:
    """A callback posting a `key_revoked` alert to `monitoring.webhook_url` (None without
    one). The POST runs on a daemon thread: the call that found the bad key goes on."""
    url = getattr(getattr(config, "monitoring", None), "webhook_url", None)
    if not url:
        return None

    def post(label: str, fp: str) -> None:
        from workers.observability.alerts import Alert, post_alerts

        alert = Alert("key_revoked", label, 1.0, 1.0, f"{label}: key {fp} refused (401/403)")
        threading.Thread(target=post_alerts, args=(url, [alert]), daemon=True).start()

    return post


def reload_key_files() -> None:
    """Re-read every key file now (the SIGHUP handler)."""
    with _LOCK:
        pools = list(_POOLS)
    for pool in pools:
        pool.reload(force=True)


def install_sighup_reload() -> bool:
    """Re-read key files on SIGHUP in this process (main thread only; False elsewhere)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        return False
    signal.signal(signal.SIGHUP, lambda *_: reload_key_files())
    return True


def forget_revoked() -> None:
    """Let revoked keys back in (tests; a process restart does the same)."""
    with _LOCK:
        _REVOKED.clear()
